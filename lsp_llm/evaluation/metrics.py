"""How a predicted middle is scored against the removed one."""

from __future__ import annotations


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def exact_line(predicted: str, expected: str) -> bool:
    """Next-line exact match: the first lines agree, ignoring surrounding whitespace."""
    return first_line(predicted) == first_line(expected)


def exact_text(predicted: str, expected: str) -> bool:
    """The whole inserted text matches (trailing whitespace aside): a block where one line
    was wanted is wrong."""
    return normalize(predicted).strip() == normalize(expected).strip()


def stray_whitespace(predicted: str) -> bool:
    """A suggestion that starts with a space or newline: every hole's cursor sits where the
    code itself starts, so such a suggestion would shift what the user accepts."""
    return bool(predicted) and predicted[0].isspace()


def normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).rstrip()


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(predicted: str, expected: str) -> float:
    """1 - Levenshtein distance / the longer length: 1.0 is identical, 0.0 nothing shared."""
    a, b = normalize(predicted), normalize(expected)
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein(a, b) / longest


def score(
    kind: str, predicted: str, expected: str, indent: str = "", replace_before: int = 0
) -> tuple[bool, float]:
    """Exact match and similarity of a suggestion for a hole of `kind`. `predicted` is
    inserted at the cursor after `replace_before` characters of `indent` (the whitespace
    before the cursor on its line) are removed. A `reindent` hole's line is scored as it
    ends up, indentation included; the other kinds score the inserted text (the first line,
    or the whole text for `body` and `indent`)."""
    if kind == "reindent":
        line = (indent[: len(indent) - replace_before] + predicted).split("\n")[0]
        return line.rstrip() == expected.rstrip(), edit_similarity(line, expected)
    scored = predicted if kind in ("body", "indent") else first_line(predicted)
    exact = exact_text if kind == "indent" else exact_line
    return exact(predicted, expected), edit_similarity(scored, expected)


def indent_before(text: str, offset: int) -> str:
    """The text between the start of the cursor's line and the cursor."""
    return text[text.rfind("\n", 0, offset) + 1 : offset]
