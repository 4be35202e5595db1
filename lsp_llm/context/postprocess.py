"""From raw model text to a suggestion that applies cleanly at the cursor.

Trailing whitespace trimmed; a multi-line suggestion cut off by the token budget loses its
unfinished last line; closing brackets that close nothing dropped; the rest of the line
replaced when the suggestion already ends with it (auto-closed brackets and quotes);
a block cut where it starts repeating the code below the cursor; suggestions that merely
repeat what follows the cursor dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

PAIRS = {")": "(", "]": "[", "}": "{"}
OPENERS = set(PAIRS.values())


@dataclass(frozen=True)
class Suggestion:
    text: str
    """What to insert at the cursor."""
    replace_chars: int
    """How many characters after the cursor (on its line) the suggestion replaces."""
    replace_before: int = 0
    """How many characters before the cursor (the whitespace of an otherwise blank line)
    the suggestion replaces: then `text` starts with the line's own indentation."""


def _open_brackets(text: str) -> list[str]:
    """Unclosed openers of `text`, ignoring brackets inside simple string literals."""
    stack: list[str] = []
    quote: str | None = None
    escaped = False
    for ch in text:
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in OPENERS:
            stack.append(ch)
        elif ch in PAIRS and stack and stack[-1] == PAIRS[ch]:
            stack.pop()
    return stack


def balance_brackets(line_before: str, suggestion: str) -> str:
    """Cut the suggestion before the first closing bracket that matches no opener in the
    cursor's line or in the suggestion itself (a closer the editor already has)."""
    stack = _open_brackets(line_before)
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(suggestion):
        if quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote or ch == "\n":
                quote = None
            continue
        if ch in "\"'`":
            quote = ch
        elif ch in OPENERS:
            stack.append(ch)
        elif ch in PAIRS:
            if not stack or stack[-1] != PAIRS[ch]:
                return suggestion[:i]
            stack.pop()
    return suggestion


def _lines_below(after: str, count: int) -> list[str]:
    """The first `count` non-blank lines after the cursor's line, stripped; read line by
    line, so the rest of a large document is never split."""
    out: list[str] = []
    start = after.find("\n")
    while start >= 0 and len(out) < count:
        end = after.find("\n", start + 1)
        line = after[start + 1 : end if end >= 0 else len(after)].strip()
        if line:
            out.append(line)
        start = end
    return out


def _repeats_following(suggestion: str, after: str) -> bool:
    """True when the suggestion's lines are just the lines that follow the cursor."""
    sug = [ln.strip() for ln in suggestion.split("\n") if ln.strip()]
    if not sug:
        return True
    nl = after.find("\n")
    rest_of_line = after if nl < 0 else after[:nl]
    if len(sug) == 1 and sug[0] == rest_of_line.strip():
        return True
    return _lines_below(after, len(sug)) == sug


def cut_at_following(suggestion: str, after: str) -> str:
    """A multi-line suggestion up to the line where it starts to repeat the code that
    follows the cursor's line (the model wrote what is already there)."""
    following = _lines_below(after, 1)
    if not following:
        return suggestion
    lines = suggestion.split("\n")
    for i in range(1, len(lines)):
        if lines[i].strip() == following[0]:
            return "\n".join(lines[:i]).rstrip()
    return suggestion


def clean_suggestion(
    raw: str,
    before: str,
    after: str,
    multiline: bool,
    truncated: bool = False,
    indent: str = "",
) -> Suggestion | None:
    """`before`/`after` are the document text before/after the cursor; `truncated`: the
    generation ended at its token budget, not at a stop rule, so its last line may be cut
    mid-word (a multi-line suggestion keeps only its whole lines then). `indent`: the
    cursor's indentation, which the prompt left out, so `raw` starts at the line's start:
    when the model put the line at that indentation (or deeper) the suggestion is inserted
    after it; at another one, it replaces it (`replace_before`)."""
    replace_before = 0
    if indent:
        first, newline, rest = raw.partition("\n")
        if first.startswith(indent):
            raw = first[len(indent) :] + newline + rest
        elif first.strip():
            replace_before = len(indent)
    text = raw if multiline else raw.split("\n", 1)[0]
    if truncated and multiline and "\n" in text:
        text = text[: text.rfind("\n")]
    text = "\n".join(line.rstrip() for line in text.split("\n")).rstrip()
    line_before = before[before.rfind("\n") + 1 :]
    nl = after.find("\n")
    line_after = (after if nl < 0 else after[:nl]).rstrip()
    text = balance_brackets(line_before, text).rstrip()
    if multiline:
        text = cut_at_following(text, after)
    if not text.strip() or _repeats_following(text, after):
        return None
    replace = 0
    if line_after and text.endswith(line_after):
        replace = len(line_after)
    elif line_after:
        # Auto-closed brackets/quotes: the suggestion may stop short of them (then they
        # stay) or include a prefix of them (then that prefix is replaced).
        for k in range(len(line_after), 0, -1):
            if text.endswith(line_after[:k]) and all(c in ")]}\"'`" for c in line_after[:k]):
                replace = k
                break
    return Suggestion(text, replace, replace_before)
