"""Finding the function a code action works on, also while the file is mid-edit."""

from __future__ import annotations

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
