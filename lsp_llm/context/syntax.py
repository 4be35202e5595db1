"""Error-tolerant parsing of the editor's text with tree-sitter.

The text in an editor is unfinished most of the time (a function whose body is not
written yet, an open bracket), and Python's own parser gives up on all of it. tree-sitter
parses what it can and marks the rest, so the code actions (and anything else that needs
structure) work on the code as it is being written. Grammars come from PyPI's
`tree-sitter-<language>` packages; a language without one gets None.

Positions: tree-sitter counts UTF-8 bytes within a row; `Lines` turns its points into the
character offsets the rest of the server uses.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable
from dataclasses import dataclass

import tree_sitter

MAX_PARSE_LINE = 10_000
"""Files with a longer line are not parsed (minified or generated code: nothing to act on,
and a pathological line can take much memory)."""


def _grammars() -> dict[str, Callable[[], object]]:
    import tree_sitter_c
    import tree_sitter_cpp
    import tree_sitter_go
    import tree_sitter_java
    import tree_sitter_javascript
    import tree_sitter_python
    import tree_sitter_rust
    import tree_sitter_typescript

    return {
        "python": tree_sitter_python.language,
        "go": tree_sitter_go.language,
        "rust": tree_sitter_rust.language,
        "java": tree_sitter_java.language,
        "c": tree_sitter_c.language,
        "cpp": tree_sitter_cpp.language,
        "javascript": tree_sitter_javascript.language,
        "javascriptreact": tree_sitter_javascript.language,
        "typescript": tree_sitter_typescript.language_typescript,
        "typescriptreact": tree_sitter_typescript.language_tsx,
    }


@functools.cache
def parser(language: str) -> tree_sitter.Parser | None:
    """A parser for an LSP language id, or None when no grammar is installed for it."""
    grammar = _grammars().get(language)
    if grammar is None:
        return None
    return tree_sitter.Parser(tree_sitter.Language(grammar()))


@dataclass(frozen=True)
class Lines:
    """A text's lines and their start offsets, for turning tree-sitter points (row, byte
    column) into character offsets."""

    text: str
    lines: list[str]
    starts: list[int]

    @staticmethod
    def of(text: str) -> Lines:
        # "\n" only: tree-sitter counts rows by it, while str.splitlines also breaks at
        # "\r", "\x0b", "\x0c", "\x1c"-"\x1e", "\x85", "\u2028" and "\u2029"
        lines = text.split("\n")
        lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        return Lines(text, lines, starts)

    def line_at(self, offset: int) -> int:
        return max(0, bisect.bisect_right(self.starts, offset) - 1)

    def offset(self, point: tree_sitter.Point, first_row: int = 0) -> int:
        """The character offset of `point` in a tree parsed from the text starting at row
        `first_row`."""
        row = point.row + first_row
        if row >= len(self.lines):
            return len(self.text)
        line = self.lines[row]
        column = point.column
        if not line.isascii():
            column = len(line.encode("utf-8")[:column].decode("utf-8", errors="ignore"))
        return self.starts[row] + column

    def point(self, offset: int, first_row: int = 0) -> tuple[int, int]:
        """The (row, byte column) of character `offset`, in a tree parsed from `first_row`."""
        row = self.line_at(offset)
        column = offset - self.starts[row]
        if row < len(self.lines) and not self.lines[row].isascii():
            column = len(self.lines[row][:column].encode("utf-8"))
        return row - first_row, column


def parse_around(
    lines: Lines, line: int, language: str = "python"
) -> tuple[tree_sitter.Tree, int] | None:
    """The tree of the top-level statement around `line` and the row it starts at; the
    whole file's when that piece has errors (a column-0 line inside a string split it
    wrongly, or the edit is elsewhere). None without a grammar or with a line past
    `MAX_PARSE_LINE`.

    Editors ask for code actions on every cursor move, on the event loop that ghost text
    waits behind: parsing the statement around the cursor first keeps that short
    (docs/engine-decisions.md)."""
    p = parser(language)
    if p is None or max(map(len, lines.lines), default=0) > MAX_PARSE_LINE:
        return None
    rows = lines.lines
    tops = [i for i, ln in enumerate(rows) if ln[:1].strip() and ln[0] not in "#)]}"]
    first = max((i for i in tops if i <= line), default=0)
    while first > 0 and first - 1 in tops and rows[first - 1].startswith("@"):
        first -= 1
    end = min((i for i in tops if i > line), default=len(rows))
    piece = p.parse("".join(rows[first:end]).encode("utf-8"))
    if not piece.root_node.has_error or (first == 0 and end == len(rows)):
        return piece, first
    return p.parse(lines.text.encode("utf-8")), 0
