"""Finding the JavaScript or TypeScript function at the cursor for the code actions, with
tree-sitter (so a function whose body is not written yet, even without its closing brace,
is found): function declarations and expressions, methods, and arrow functions with a
block body. Its doc comment is the `/** … */` right above its statement.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from tree_sitter import Node

from lsp_llm.context.syntax import MAX_PARSE_LINE, Lines, parser

if TYPE_CHECKING:
    from lsp_llm.context.actions import FunctionSpan

FUNCTIONS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "function",
        "generator_function",
        "method_definition",
        "arrow_function",
    }
)
WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration"})
"""Statements a function sits in whose line its doc comment goes above."""
STUB_STATEMENT = re.compile(r"^\s*(throw new Error\(.*\);?|//.*)?\s*$")


def _enclosing(node: Node | None) -> Node | None:
    while node is not None:
        body = node.child_by_field_name("body")
        if node.type in FUNCTIONS and body is not None and body.type == "statement_block":
            return node
        node = node.parent
    return None


def _statement(fn: Node) -> Node:
    """The statement whose line the doc comment goes above (`export function …`,
    `const f = () => {…}`), or the function itself."""
    node = fn
    while node.parent is not None and (
        node.parent.type in WRAPPERS or node.parent.type == "variable_declarator"
    ):
        node = node.parent
    return node


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _unit(lines: list[str]) -> str:
    """The file's indentation step: a tab, four spaces, or two."""
    if any(ln.startswith("\t") for ln in lines):
        return "\t"
    widths = {len(_indent(ln)) for ln in lines if ln.strip()}
    return "  " if any(w % 4 == 2 for w in widths) or not widths - {0} else "    "


def find_js_function(text: str, offset: int, language: str) -> FunctionSpan | None:
    """The innermost function at `offset` as a `FunctionSpan` in the `jsdoc` style, or
    None."""
    from lsp_llm.context.actions import FunctionSpan

    p = parser(language)
    lines = Lines.of(text)
    if p is None or max(map(len, lines.lines), default=0) > MAX_PARSE_LINE:
        return None
    tree = p.parse(text.encode("utf-8"))
    row, column = lines.point(offset)
    fn = _enclosing(tree.root_node.descendant_for_point_range((row, column), (row, column)))
    if fn is None and row < len(lines.lines) and not lines.lines[row].strip():
        above = next((i for i in range(row - 1, -1, -1) if lines.lines[i].strip()), None)
        if above is not None:
            col = len(lines.lines[above].rstrip("\r\n")) - 1
            point = lines.point(lines.starts[above] + max(0, col))
            fn = _enclosing(tree.root_node.descendant_for_point_range(point, point))
    if fn is None:
        return None
    body = fn.child_by_field_name("body")
    assert body is not None
    statement = _statement(fn)
    head_row = statement.start_point.row
    start = lines.starts[head_row]
    indent = _indent(lines.lines[head_row])
    before = statement.prev_named_sibling
    has_doc = bool(
        before is not None
        and before.type == "comment"
        and before.text is not None
        and before.text.startswith(b"/**")
        and before.end_point.row >= head_row - 1
    )
    opening = lines.offset(body.start_point) + 1  # just past `{`
    closed = (
        body.child_count > 0 and body.children[-1].type == "}" and not body.children[-1].is_missing
    )
    close = lines.offset(body.children[-1].start_point) if closed else _blank_run_end(text, opening)
    inside = text[opening:close]
    statements = [c for c in body.named_children if c.type != "comment"]
    body_lines = [ln for ln in inside.splitlines() if ln.strip()]
    body_indent = next((_indent(ln) for ln in body_lines), indent + _unit(lines.lines))
    if len(body_indent) <= len(indent):
        body_indent = indent + _unit(lines.lines)
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
        style="jsdoc",
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
