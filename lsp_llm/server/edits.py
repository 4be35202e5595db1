"""Applying a `didChange`'s edits to a document in time linear in the edits plus one pass
over the document, and refusing the whole change when one of its ranges does not address
the document (inverted, a line past the end, inside a surrogate pair): a refused change
leaves the document as it was, for the server to mark out of sync.

pygls applies each edit to the whole text (splitting it into lines and joining it again):
N edits on a large file cost N times the file. Here the text is split once, each edit
replaces only the lines it touches, and the lines are joined once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lsprotocol import types

from lsp_llm.context.positions import PositionError, _units


class EditError(ValueError):
    """A change that cannot be applied; the message says which edit and why."""


@dataclass
class Applied:
    text: str
    copied: int
    """Characters written while applying (the work done): the lines each edit touched, and
    the final join."""


def _column(line: str, character: int, encoding: str) -> int:
    """The index in `line` (without its newline) of `character` code units; past the end of
    the line means its end (the LSP's rule), inside a character is an error."""
    if encoding == "utf-32" or line.isascii():
        return min(character, len(line))
    units = 0
    for i, ch in enumerate(line):
        if units == character:
            return i
        units += _units(ch, encoding)
        if units > character:
            raise PositionError(f"character {character} falls inside a character")
    return len(line)


def apply_changes(
    text: str, changes: Iterable[types.TextDocumentContentChangeEvent], encoding: str
) -> Applied:
    """`text` after `changes`, in order; `EditError` (and nothing applied) for a bad one."""
    lines = text.split("\n")
    copied = 0
    for n, change in enumerate(changes, 1):
        if not isinstance(change, types.TextDocumentContentChangePartial):
            lines = change.text.split("\n")  # the whole document
            copied += len(change.text)
            continue
        start, end = change.range.start, change.range.end
        if (start.line, start.character) > (end.line, end.character):
            raise EditError(f"edit {n}: its range ends before it starts")
        if min(start.line, start.character, end.line, end.character) < 0:
            raise EditError(f"edit {n}: a negative position")
        if end.line >= len(lines):
            raise EditError(
                f"edit {n}: line {end.line} is past the end of the document ({len(lines)} lines)"
            )
        try:
            a = _column(lines[start.line], start.character, encoding)
            b = _column(lines[end.line], end.character, encoding)
        except PositionError as exc:
            raise EditError(f"edit {n}: {exc}") from None
        if start.line == end.line and a > b:
            raise EditError(f"edit {n}: its range ends before it starts")
        joined = lines[start.line][:a] + change.text + lines[end.line][b:]
        copied += len(joined)
        lines[start.line : end.line + 1] = joined.split("\n")
    out = "\n".join(lines)
    return Applied(out, copied + len(out))
