"""Holes in the brace languages (JavaScript, TypeScript, Go, Rust, Java, C, C++), for the
eval's language slice, found with the grammars the code actions use
(`context/bracefunctions.py`): `line` (a statement line inside a function body removed,
the cursor after its indentation), `midline` (the rest of such a line after a space or
punctuation) and `body` (a small function body removed, the line with its `{` kept),
scored as the Python kinds are. `indent` and `reindent` stay Python's: where a brace
language's editor puts the cursor depends on its formatter."""

from __future__ import annotations

from tree_sitter import Node

from lsp_llm.context.bracefunctions import GRAMMARS
from lsp_llm.context.languages import language_id
from lsp_llm.context.syntax import parser
from lsp_llm.evaluation.holes import (
    MAX_BODY_CHARS,
    MAX_BODY_LINES,
    Hole,
    HoleKind,
    line_starts,
    midline_cut,
    python_candidates,
)

COMMENT = ("//", "/*", "*", "#")
"""How a comment line (or a preprocessor or attribute line) begins."""
NOT_A_STATEMENT = (*COMMENT, "{", "}", ")", "]")
"""How a body line that is a comment or a closing bracket begins."""
OPERATOR_REST = " =:>"
"""A mid-line cut is not made before these: it would split `:=`, `==`, `::` or `=>`."""
BRACE_KINDS: tuple[HoleKind, ...] = ("line", "midline", "body")


def _functions(node: Node, language: str) -> list[Node]:
    """Every function with a block body under `node` (nested ones included)."""
    grammar = GRAMMARS[language]
    found, stack = [], [node]
    while stack:
        n = stack.pop()
        body = n.child_by_field_name("body")
        if n.type in grammar.functions and body is not None and body.type in grammar.bodies:
            found.append(n)
        stack.extend(n.children)
    return found


def _is_statement(line: str) -> bool:
    s = line.strip()
    return len(s) > 2 and not s.startswith(NOT_A_STATEMENT) and s.isascii()


def brace_candidates(path: str, text: str, language: str) -> dict[HoleKind, list[Hole]]:
    """Every hole of each brace kind in `text`, a file in `language` (an LSP id)."""
    out: dict[HoleKind, list[Hole]] = {k: [] for k in BRACE_KINDS}
    parse = parser(language)
    if parse is None or language not in GRAMMARS:
        return out
    lines = text.split("\n")
    starts = line_starts(text)
    seen: set[int] = set()
    functions = _functions(parse.parse(text.encode()).root_node, language)
    for fn in sorted(functions, key=lambda n: n.start_byte):
        body = fn.child_by_field_name("body")
        assert body is not None
        first, last = body.start_point.row + 1, body.end_point.row - 1  # inside the braces
        if last < first or not lines[body.start_point.row].rstrip().endswith("{"):
            continue
        for row in range(first, last + 1):
            line = lines[row]
            if row in seen or not _is_statement(line):
                continue  # a nested function's lines belong to its outer function too
            seen.add(row)
            indent = len(line) - len(line.lstrip())
            content = line.rstrip()
            begin = starts[row]
            doc = text[: begin + indent] + text[begin + len(content) :]
            expected = content[indent:]
            out["line"].append(Hole("line", path, row + 1, doc, begin + indent, expected, language))
            at = midline_cut(content, indent, OPERATOR_REST)
            if at is not None:
                doc = text[: begin + at] + text[begin + len(content) :]
                out["midline"].append(
                    Hole("midline", path, row + 1, doc, begin + at, content[at:], language)
                )
        block = lines[first : last + 1]
        if (
            len(block) <= MAX_BODY_LINES
            and sum(len(b) + 1 for b in block) <= MAX_BODY_CHARS
            and _is_statement(block[0])
            and block[-1].strip()  # the removed text ends on code, not a blank or comment
            and not block[-1].strip().startswith(COMMENT)
            and lines[last + 1].strip().startswith("}")
        ):
            indent = len(block[0]) - len(block[0].lstrip())
            begin = starts[first] + indent
            end = starts[last] + len(lines[last].rstrip())
            doc = text[:begin] + text[end:]
            out["body"].append(Hole("body", path, first + 1, doc, begin, text[begin:end], language))
    return out


def any_candidates(path: str, text: str) -> dict[HoleKind, list[Hole]]:
    """A file's holes in its language (from its extension): Python's kinds or the brace
    kinds; none for another language."""
    language = language_id(None, path)
    if language == "python":
        return python_candidates(path, text)
    if language in GRAMMARS:
        return brace_candidates(path, text, language)
    return {}
