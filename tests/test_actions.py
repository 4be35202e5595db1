"""Finding the function a code action works on, also while the file is mid-edit."""

from __future__ import annotations

import pytest

from lsp_llm.context.actions import find_function

SOURCE = """\
import math


@staticmethod
def area(radius):
    pass


def circumference(r):
    return 2 * math.pi * r
"""


def test_finds_the_stub_at_the_cursor() -> None:
    fn = find_function(SOURCE, SOURCE.index("pass"))
    assert fn is not None and fn.is_stub and not fn.has_docstring
    assert SOURCE[fn.body_start :].startswith("pass")


def test_a_syntax_error_elsewhere_does_not_hide_the_function() -> None:
    broken = SOURCE.replace("return 2 * math.pi * r", "return 2 * if i == 1:")
    fn = find_function(broken, broken.index("pass"))
    assert fn is not None and fn.is_stub
    assert broken[fn.start : fn.end].endswith("pass")
    assert find_function(broken, broken.index("if i == 1")) is None  # the broken one itself
    assert find_function(SOURCE, 0) is None  # not inside a function


def test_column_zero_text_in_a_string_does_not_split_the_function() -> None:
    source = (
        'def report(x):\n    text = """\nTotal:\n"""\n    return text + x\n\n\ndef g():\n    pass\n'
    )
    for anchor in ("return text", "def report", "Total"):
        fn = find_function(source, source.index(anchor))
        assert fn is not None and source[fn.start :].startswith("def report"), anchor
        assert source[fn.start : fn.end].endswith("return text + x")


def test_a_class_method_is_found_in_its_class() -> None:
    source = "class A:\n    @property\n    def size(self):\n        ...\n\n\nx = 1\n"
    fn = find_function(source, source.index("..."))
    assert fn is not None and fn.is_stub
    assert source[fn.start :].startswith("    def size")


def test_a_pathological_line_is_not_parsed():
    """200,000 unary minus signs make CPython's parser allocate without bound; such a file
    offers no function (and costs no memory)."""
    from lsp_llm.context.actions import find_function

    text = "def f(x):\n    return x\n\n\nx = " + "-" * 200_000 + "1\n"
    assert find_function(text, 12) is None
    assert find_function("def f(x):\n    return x\n", 12) is not None


def _apply(text: str, rep) -> str:
    return text[: rep.start] + rep.text + text[rep.end :]


STARTED = "import math\n\n\ndef perimeter(r):\n    \n\ndef area(r):\n    return math.pi * r * r\n"


def test_a_function_whose_body_is_not_written_yet_is_a_stub() -> None:
    """The editor's text mid-edit: a header and the indented blank line under it (where
    the cursor is). Python's parser rejects the file; the actions are still offered."""
    import ast

    import pytest

    from lsp_llm.context.actions import docstring_edit, fill_body_edit

    with pytest.raises(SyntaxError):
        ast.parse(STARTED)
    cursor = STARTED.index("    \n") + 4
    for offset in (cursor, STARTED.index("perimeter")):
        fn = find_function(STARTED, offset)
        assert fn is not None and fn.is_stub and not fn.has_docstring, offset
        assert STARTED[fn.start :].startswith("def perimeter")
        assert fn.stub_start == cursor == fn.end and fn.body_indent == "    " and fn.pad == ""
    filled = _apply(STARTED, fill_body_edit(STARTED, fn, "return 2 * math.pi * r", True))
    assert "def perimeter(r):\n    return 2 * math.pi * r\n\ndef area" in filled
    ast.parse(filled)
    documented = _apply(STARTED, docstring_edit(STARTED, fn, "Perimeter of a circle.", True))
    assert 'def perimeter(r):\n    """Perimeter of a circle."""\n    \n' in documented
    documented_fn = find_function(documented, documented.index("    \n") + 4)
    assert documented_fn is not None and documented_fn.has_docstring and documented_fn.is_stub
    refilled = fill_body_edit(documented, documented_fn, "return 2 * math.pi * r", True)
    assert '"""Perimeter of a circle."""\n    return 2 * math.pi * r\n' in _apply(
        documented, refilled
    )


def test_a_started_function_without_indentation_or_at_the_end_of_the_file() -> None:
    from lsp_llm.context.actions import fill_body_edit, fill_body_prompt
    from lsp_llm.generation.tokens import TokenizerInfo

    for text in ("def perimeter(r):\n\n\nx = 1\n", "class C:\n    def perimeter(self):\n"):
        header = text.index("perimeter")
        cursor = text.index("):\n") + 3
        for offset in (header, cursor):
            fn = find_function(text, offset)
            assert fn is not None and fn.is_stub, (text, offset)
        indent = "    " if text.startswith("def") else "        "
        assert fn.body_indent == indent and fn.pad == indent
        prompt = fill_body_prompt(TokenizerInfo.by_characters(), text, fn, 400)
        assert prompt.prefix.endswith("):\n" + indent)
        filled = _apply(text, fill_body_edit(text, fn, "return 1", True))
        assert "):\n" + indent + "return 1\n" in filled or filled.endswith("return 1")


def test_broken_code_around_does_not_hide_a_function() -> None:
    text = (
        "def total(xs):\n    return sum(xs\n\n\n"  # an open bracket
        "def café(r):\n    '''Ça.'''\n    ...\n\n\n"  # non-ASCII before the offsets used
        "def g(:\n"
    )
    fn = find_function(text, text.index("..."))
    assert fn is not None and fn.is_stub and fn.has_docstring
    assert text[fn.start :].startswith("def café") and text[fn.stub_start :].startswith("...")
    assert text[fn.body_start :].startswith("'''Ça.'''")


def test_a_blank_line_between_finished_functions_offers_nothing() -> None:
    text = "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
    assert find_function(text, text.index("\n\n") + 1) is None
    assert find_function(text, text.index("return 1")).is_stub is False


JS = """\
/** Adds two numbers. */
export function add(a, b) {
  return a + b;
}

class Box {
  area(width, height) {
  }
}

const perimeter = (r) => {

};
"""


def test_javascript_functions_their_doc_comments_and_empty_bodies() -> None:
    from lsp_llm.context.actions import docstring_edit, fill_body_edit

    add = find_function(JS, JS.index("a + b"), "javascript")
    assert add is not None and add.has_docstring and not add.is_stub
    assert JS[add.start :].startswith("export function add")
    area = find_function(JS, JS.index("area"), "typescript")
    assert area is not None and area.is_stub and not area.has_docstring
    assert area.indent == "  " and area.body_indent == "    "
    filled = _apply(JS, fill_body_edit(JS, area, "return width * height;", True))
    assert "  area(width, height) {\n    return width * height;\n  }\n}" in filled
    documented = _apply(JS, docstring_edit(JS, area, "The area.\n@returns {number}", True))
    assert (
        "class Box {\n  /**\n   * The area.\n   * @returns {number}\n   */\n  area(" in documented
    )
    arrow = find_function(JS, JS.index("\n\n};") + 1, "javascript")  # the blank body line
    assert arrow is not None and arrow.is_stub and JS[arrow.start :].startswith("const perimeter")
    assert find_function(JS, JS.index("add"), "elixir") is None  # no grammar: no actions


def test_a_javascript_function_without_its_closing_brace_yet() -> None:
    from lsp_llm.context.actions import fill_body_edit, fill_body_prompt
    from lsp_llm.context.shape import LINE_REPEATS, LOOP_CHARS
    from lsp_llm.generation.tokens import TokenizerInfo

    text = "function area(r) {\n  \n"
    fn = find_function(text, len(text) - 1, "javascript")
    assert fn is not None and fn.is_stub and not fn.closed
    prompt = fill_body_prompt(TokenizerInfo.by_characters(), text, fn, 200)
    assert prompt.prefix.endswith("function area(r) {\n  ")
    # a body caught in a loop ends as a completion does (repeated lines, a loop in a line)
    assert prompt.stop.max_line_repeats == LINE_REPEATS
    assert prompt.stop.max_line_cycle == LOOP_CHARS
    filled = _apply(text, fill_body_edit(text, fn, "return r * r;", True))
    assert filled.startswith("function area(r) {\n  return r * r;\n}")


def test_line_separators_other_than_newline_keep_offsets_right() -> None:
    """tree-sitter counts rows by "\\n" only; U+2028, form feeds and lone CRs are text."""
    from lsp_llm.context.actions import fill_body_edit

    py = (
        "class A:\n    def f(self):\n        return 'a\u2028b\x0cc'\n\n"
        "    def g(self):\n        pass\n"
    )
    fn = find_function(py, py.index("pass"))
    assert fn is not None and py[fn.start :].startswith("    def g(self):")
    assert py[fn.stub_start :].startswith("pass")
    js = "// note\u2028x\rmore\nfunction f(a) {\n}\n"
    fn = find_function(js, js.index("{") + 1, "javascript")
    assert fn is not None and js[fn.start :].startswith("function f(a) {")
    filled = _apply(js, fill_body_edit(js, fn, "return a;", True))
    assert filled.endswith("function f(a) {\n  return a;\n}\n")


BRACES = {
    # language: (code with a documented function and a stub, the stub's marker, the
    # documented one's marker, the doc comment the edit writes for "The area.")
    "go": (
        "package shapes\n\n// Add adds.\nfunc Add(a, b int) int {\n\treturn a + b\n}\n\n"
        'func (s *Square) Area() float64 {\n\tpanic("todo")\n}\n',
        "Area",
        "a + b",
        "// The area.\nfunc (s *Square) Area()",
    ),
    "rust": (
        "/// Adds.\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\nimpl Square {\n"
        "    pub fn area(&self) -> f64 {\n        todo!()\n    }\n}\n",
        "area",
        "a + b",
        "    /// The area.\n    pub fn area(",
    ),
    "java": (
        "class Square {\n    /** Adds. */\n    int add(int a, int b) {\n        return a + b;\n"
        "    }\n\n    @Override\n    public double area() {\n"
        '        throw new UnsupportedOperationException("todo");\n    }\n}\n',
        "area",
        "a + b",
        "    /**\n     * The area.\n     */\n    @Override\n    public double area()",
    ),
    "c": (
        "// Adds.\nint add(int a, int b) {\n    return a + b;\n}\n\n"
        "static double area(double side) {\n    // TODO\n}\n",
        "area",
        "a + b",
        "/**\n * The area.\n */\nstatic double area(",
    ),
    "cpp": (
        "/** Adds. */\nint add(int a, int b) {\n    return a + b;\n}\n\n"
        "template <typename T>\nT area(T side) {\n}\n",
        "area",
        "a + b",
        "/**\n * The area.\n */\ntemplate <typename T>\nT area(",
    ),
}


@pytest.mark.parametrize("language", sorted(BRACES))
def test_brace_languages_functions_doc_comments_and_stubs(language: str) -> None:
    from lsp_llm.context.actions import docstring_edit, docstring_prompt, fill_body_edit
    from lsp_llm.generation.tokens import TokenizerInfo

    code, stub_marker, doc_marker, documented = BRACES[language]
    done = find_function(code, code.index(doc_marker), language)
    assert done is not None and done.has_docstring and not done.is_stub
    stub = find_function(code, code.index(stub_marker), language)
    assert stub is not None and stub.is_stub and not stub.has_docstring
    assert documented in _apply(code, docstring_edit(code, stub, "The area.", True))
    filled = _apply(code, fill_body_edit(code, stub, "return side * side;", True))
    assert "return side * side;" in filled and filled.count("{") == filled.count("}")
    # a model without FIM tokens is asked in a chat, for the language's own doc style
    prompt = docstring_prompt(TokenizerInfo.by_characters(), code, stub, 400)
    assert prompt.kind == "chat"
