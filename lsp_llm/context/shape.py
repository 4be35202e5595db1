"""Single line or a block: what kind of completion the cursor position asks for, and the
stop rules that follow from it."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lsp_llm.generation.types import StopRules

BLOCK_OPENERS = (":", "{", "=>", " do", " then")
BRACKET_OPENERS = ("(", "[")
"""Open a block only at the very end of a line; with an auto-closed bracket after the
cursor the user is filling in arguments, on one line."""
CLOSERS = set(")]}\"'`;, \t")
LINE_REPEATS = 3
"""A block completion ends when a line (or a few) has come this many times in a row."""
LOOP_CHARS = 48
"""A completion ends when a piece of text has repeated back to back over this many
characters of a line (`StopRules.max_line_cycle`: the first line keeps what came before
the loop, a later line is dropped)."""
LINE = StopRules(single_line=True, max_line_cycle=LOOP_CHARS)


def block_rules(indent: int) -> StopRules:
    """A block's stop rules: it ends where the code dedents below `indent`, at two blank
    lines, or where it loops (the same lines again, or a loop inside a line)."""
    return StopRules(
        block_indent=indent,
        stop_strings=("\n\n\n",),
        max_line_repeats=LINE_REPEATS,
        max_line_cycle=LOOP_CHARS,
    )


@dataclass(frozen=True)
class Shape:
    multiline: bool
    stop: StopRules


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def completion_shape(before: str, after: str, multiline: str = "auto") -> Shape:
    """`multiline` is "auto", "always" or "never".

    auto: text after the cursor on its line (other than closing brackets, quotes and
    punctuation) means the rest of that line only; an empty line, or the end of a line
    that opens a block, asks for a block. On an empty indented line, what follows decides:
    a next line at the same indentation means one line is wanted (a block only when that
    line opens one), a deeper one means a single line (it heads the body below), a
    shallower one or none means the block may run to the end of the cursor's block.
    """
    line_before = before[before.rfind("\n") + 1 :]
    nl = after.find("\n")
    line_after = after if nl < 0 else after[:nl]
    at_blank = not line_before.strip()
    stripped = line_before.rstrip()
    opens_block = stripped.endswith(BLOCK_OPENERS) or (
        stripped.endswith(BRACKET_OPENERS) and not line_after.strip()
    )
    mid_line = any(ch not in CLOSERS for ch in line_after)
    if multiline == "never":
        block = False
    elif multiline == "always":
        block = True
    else:
        block = not mid_line and (at_blank or opens_block)
    if not block:
        return Shape(False, LINE)
    if at_blank:
        # Stay in the cursor's block; at column 0 stop at the next top-level statement.
        indent = max(len(line_before), 1)
    else:
        indent = _indent(line_before) + (1 if opens_block else 0)
    rules = block_rules(indent)
    following = _next_code_indent(after) if at_blank and multiline == "auto" else None
    if following is not None and following > len(line_before):
        # The next line is already the body of what goes here: one line (a header).
        return Shape(False, LINE)
    if following is not None and following == len(line_before) and line_before:
        # Inside a body that goes on below: a line, or a block only if the line opens one.
        return Shape(True, replace(rules, line_unless_opens=BLOCK_OPENERS))
    return Shape(True, rules)


def _next_code_indent(after: str) -> int | None:
    """The indentation of the first non-blank line after the cursor's line, if any."""
    for line in after.split("\n")[1:]:
        if line.strip():
            return _indent(line)
    return None
