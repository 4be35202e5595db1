"""LSP positions (line, character in UTF-16, UTF-8 or UTF-32 code units) to offsets in
Python strings and back, with clear errors for positions a client should not send."""

from __future__ import annotations


class PositionError(ValueError):
    """A position that does not address a place in the document."""


def _units(ch: str, encoding: str) -> int:
    if encoding == "utf-32":
        return 1
    if encoding == "utf-8":
        return len(ch.encode("utf-8", errors="surrogatepass"))
    return 2 if ord(ch) > 0xFFFF else 1


def line_starts(text: str) -> list[int]:
    starts = [0]
    i = text.find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = text.find("\n", i + 1)
    return starts


def to_offset(
    text: str, line: int, character: int, encoding: str = "utf-16", starts: list[int] | None = None
) -> int:
    """Offset of (line, character). A character past the end of its line means the end of
    the line (as the LSP specification says); a line past the end, a negative number, or
    a position inside a character's code units is an error."""
    starts = starts if starts is not None else line_starts(text)
    if line < 0 or character < 0:
        raise PositionError(f"negative position ({line}:{character})")
    if line >= len(starts):
        if line == len(starts) and character == 0 and text.endswith("\n"):
            return len(text)
        raise PositionError(f"line {line} is past the end of the document ({len(starts)} lines)")
    start = starts[line]
    end = starts[line + 1] - 1 if line + 1 < len(starts) else len(text)
    units = 0
    offset = start
    while offset < end and units < character:
        units += _units(text[offset], encoding)
        offset += 1
    if units > character:
        raise PositionError(
            f"position {line}:{character} falls inside a character "
            f"(a surrogate pair or multi-byte sequence)"
        )
    return offset


def to_position(
    text: str, offset: int, encoding: str = "utf-16", starts: list[int] | None = None
) -> tuple[int, int]:
    import bisect

    starts = starts if starts is not None else line_starts(text)
    line = bisect.bisect_right(starts, offset) - 1
    segment = text[starts[line] : offset]
    if encoding == "utf-32":
        return line, len(segment)
    return line, sum(_units(ch, encoding) for ch in segment)
