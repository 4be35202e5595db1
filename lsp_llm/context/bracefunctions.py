"""Finding the function at the cursor in the brace languages, for the code actions, with
tree-sitter (so a function whose body is not written yet, even without its closing brace
where the grammar allows, is found): JavaScript and TypeScript (declarations, expressions,
methods, arrow functions with a block body), Go, Rust, Java, C and C++. Its doc comment is
the comment right above its statement, in the language's own style (`DOC_STYLES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tree_sitter import Node

from lsp_llm.context.syntax import MAX_PARSE_LINE, Lines, parser

if TYPE_CHECKING:
    from lsp_llm.context.actions import FunctionSpan


@dataclass(frozen=True)
class Grammar:
    """What a function is in one language's tree-sitter grammar."""

    functions: frozenset[str]
    bodies: frozenset[str]
    wrappers: frozenset[str] = frozenset()
    """Statements a function sits in whose line its doc comment goes above."""


JS = Grammar(
    frozenset(
        {
            "function_declaration",
            "generator_function_declaration",
            "function_expression",
            "function",
            "generator_function",
            "method_definition",
            "arrow_function",
        }
    ),
    frozenset({"statement_block"}),
    frozenset({"export_statement", "lexical_declaration", "variable_declaration"}),
)
GRAMMARS = {
    "javascript": JS,
    "javascriptreact": JS,
    "typescript": JS,
    "typescriptreact": JS,
    "go": Grammar(
        frozenset({"function_declaration", "method_declaration", "func_literal"}),
        frozenset({"block"}),
    ),
    "rust": Grammar(frozenset({"function_item"}), frozenset({"block"})),
    "java": Grammar(
        frozenset({"method_declaration", "constructor_declaration"}),
        frozenset({"block", "constructor_body"}),
    ),
    "c": Grammar(frozenset({"function_definition"}), frozenset({"compound_statement"})),
    "cpp": Grammar(
        frozenset({"function_definition"}),
        frozenset({"compound_statement"}),
        frozenset({"template_declaration"}),
    ),
}
LANGUAGES = frozenset(GRAMMARS)


@dataclass(frozen=True)
class DocStyle:
    """How a language writes a function's doc comment above it."""

    open: str
    """The comment's first line (`/**`), or "" for line comments."""
    line: str
    """What starts each line of text (` * `, `// `, `/// `)."""
    close: str
    """The comment's last line (` */`), or ""."""
    request: str
    """What a chat-only model is asked for."""
    any_comment: bool = False
    """Any comment right above the function documents it (C and C++ have no one form)."""

    @property
    def marker(self) -> str:
        """How the doc comment begins (`/**`, `//`, `///`)."""
        return self.open or self.line.strip()


JSDOC = DocStyle(
    "/**",
    " * ",
    " */",
    "Write the JSDoc comment for this function: one summary "
    "line, then @param and @returns lines. Reply with only the comment.",
)
DOC_STYLES = {
    **dict.fromkeys(("javascript", "javascriptreact", "typescript", "typescriptreact"), JSDOC),
    "java": DocStyle("/**", " * ", " */", "Write the Javadoc comment for this method: one "
                     "summary line, then @param and @return lines. Reply with only the comment."),
    **dict.fromkeys(("c", "cpp"), DocStyle("/**", " * ", " */", "Write the doc comment for "
                    "this function: what it does, its parameters and its result. Reply with "
                    "only the comment.", any_comment=True)),
    "go": DocStyle("", "// ", "", "Write the Go doc comment for this function: sentences that "
                   "begin with its name. Reply with only the comment."),
    "rust": DocStyle("", "/// ", "", "Write the Rust doc comment for this function: a summary "
                     "line, then its arguments and result. Reply with only the comment."),
}  # fmt: skip
STUB_STATEMENT = re.compile(
    r"^\s*(throw new \w+\(.*\);?|panic\(.*\)|(todo|unimplemented)!\(.*\);?|//.*)?\s*$"
)
"""A body line that only says it is not written yet (or is blank)."""


def _enclosing(node: Node | None, grammar: Grammar) -> Node | None:
    while node is not None:
        body = node.child_by_field_name("body")
        if node.type in grammar.functions and body is not None and body.type in grammar.bodies:
            return node
        node = node.parent
    return None


def _statement(fn: Node, grammar: Grammar) -> Node:
    """The statement whose line the doc comment goes above (`export function …`,
    `const f = () => {…}`, `template <…> T f(…)`), or the function itself."""
    node = fn
    while node.parent is not None and (
        node.parent.type in grammar.wrappers or node.parent.type == "variable_declarator"
    ):
        node = node.parent
    return node


def _is_doc(comment: Node | None, head_row: int, style: DocStyle) -> bool:
    """Whether `comment` is the function's doc comment: a comment in the language's doc form
    (any comment for C and C++) ending on the line right above the function."""
    if comment is None or "comment" not in comment.type or comment.text is None:
        return False
    end_row = comment.end_point.row
    if comment.end_point.column == 0:  # a line comment's node ends at the next row's start
        end_row -= 1
    if end_row != head_row - 1:
        return False
    return style.any_comment or comment.text.lstrip().startswith(style.marker.encode())


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _unit(lines: list[str]) -> str:
    """The file's indentation step: a tab, four spaces, or two."""
    if any(ln.startswith("\t") for ln in lines):
        return "\t"
    widths = {len(_indent(ln)) for ln in lines if ln.strip()}
    return "  " if any(w % 4 == 2 for w in widths) or not widths - {0} else "    "


def find_brace_function(text: str, offset: int, language: str) -> FunctionSpan | None:
    """The innermost function at `offset` as a `FunctionSpan` in the `braces` style, or
    None."""
    from lsp_llm.context.actions import FunctionSpan

    grammar, style = GRAMMARS[language], DOC_STYLES[language]
    p = parser(language)
    lines = Lines.of(text)
    if p is None or max(map(len, lines.lines), default=0) > MAX_PARSE_LINE:
        return None
    tree = p.parse(text.encode("utf-8"))
    row, column = lines.point(offset)
    fn = _enclosing(
        tree.root_node.descendant_for_point_range((row, column), (row, column)), grammar
    )
    if fn is None and row < len(lines.lines) and not lines.lines[row].strip():
        above = next((i for i in range(row - 1, -1, -1) if lines.lines[i].strip()), None)
        if above is not None:
            col = len(lines.lines[above].rstrip("\r\n")) - 1
            point = lines.point(lines.starts[above] + max(0, col))
            fn = _enclosing(tree.root_node.descendant_for_point_range(point, point), grammar)
    if fn is None:
        return None
    body = fn.child_by_field_name("body")
    assert body is not None
    statement = _statement(fn, grammar)
    head_row = statement.start_point.row
    start = lines.starts[head_row]
    indent = _indent(lines.lines[head_row])
    has_doc = _is_doc(statement.prev_named_sibling, head_row, style)
    opening = lines.offset(body.start_point) + 1  # just past `{`
    closed = (
        body.child_count > 0 and body.children[-1].type == "}" and not body.children[-1].is_missing
    )
    close = lines.offset(body.children[-1].start_point) if closed else _blank_run_end(text, opening)
    inside = text[opening:close]
    statements = [c for c in body.named_children if c.type != "comment"]
    body_lines = [ln for ln in inside.splitlines() if ln.strip()]
    nested = indent + _unit(lines.lines)
    body_indent = next((_indent(ln) for ln in body_lines), nested)
    if len(body_indent) <= len(indent):
        body_indent = nested
    is_stub = all(STUB_STATEMENT.match(ln) for ln in body_lines) and len(statements) <= 1
    return FunctionSpan(
        start=start,
        body_line_start=start,
        body_start=opening,
        stub_start=opening,
        end=close,
        body_indent=body_indent,
        has_docstring=has_doc,
        is_stub=is_stub,
        style="braces",
        doc=style,
        indent=indent,
        closed=closed,
    )


def _blank_run_end(text: str, at: int) -> int:
    """The end of the whitespace after `at` (a body not closed yet runs to the next code)."""
    end = at
    while end < len(text) and text[end] in " \t\r\n":
        end += 1
    # keep the newline before the next code line
    back = text.rfind("\n", at, end)
    return back if back >= 0 and end < len(text) else end
