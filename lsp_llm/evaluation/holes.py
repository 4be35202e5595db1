"""Holes punched in real code, the way an editor asks for completions: the cursor after a
line's indentation inside a function body (the line removed), mid-line after a space or
punctuation (the rest of the line removed), a whole small function body removed (the
signature and docstring kept), and `indent`: a line removed where the editor's auto-indent
puts the cursor exactly at its indentation (scored on the whole inserted text, so a block
where one line was wanted is wrong), and `reindent`: a line removed where the editor's
auto-indent puts the cursor at another indentation than the line's (a dedent after
`return`): the line as it ends up after the suggestion is applied is scored, indentation
included, so only a suggestion that re-indents the line can be right. Deterministic for a
given seed and set of sources."""

from __future__ import annotations

import ast
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

HoleKind = Literal["line", "midline", "body", "indent", "reindent"]
KINDS: tuple[HoleKind, ...] = ("line", "midline", "body", "indent", "reindent")
MIDLINE_AFTER = " (.,[=:"
"""Mid-line cursors sit right after one of these characters (a token boundary)."""
MAX_BODY_LINES = 8
MAX_BODY_CHARS = 400
PROGRESS_EVERY = 10
"""The eval prints a progress line every this many generations (a slow model's eval
runs for hours)."""


@dataclass(frozen=True)
class Hole:
    kind: HoleKind
    path: str
    line: int
    """1-based line of the cursor in the original file."""
    text: str
    """The document with the middle removed."""
    offset: int
    """The cursor, in characters of `text`."""
    expected: str
    """The removed middle (for `reindent`, the whole line with its indentation)."""
    language: str = "python"
    """The document's LSP language id."""


def line_starts(text: str) -> list[int]:
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)
    return starts


def _is_code(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


def _body_start(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The 1-based line of the first statement after the docstring, 0 if none."""
    body = fn.body
    first = body[0] if body else None
    value = first.value if isinstance(first, ast.Expr) else None
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        body = body[1:]
    return body[0].lineno if body else 0


def auto_indent(previous: str) -> int:
    """Where an editor puts the cursor on a new line after `previous`: at its indentation,
    one level (4 columns) deeper after a line that opens a block."""
    indent = len(previous) - len(previous.lstrip())
    return indent + 4 if previous.rstrip().endswith(":") else indent


def python_candidates(path: str, text: str) -> dict[HoleKind, list[Hole]]:
    out: dict[HoleKind, list[Hole]] = {k: [] for k in KINDS}
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return out
    lines = text.split("\n")
    starts = line_starts(text)
    seen: set[int] = set()

    def cut(start: int, end: int) -> tuple[str, str]:
        return text[:start] + text[end:], text[start:end]

    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = _body_start(node)
        last = node.end_lineno or 0
        if not first or first > last:
            continue
        for lineno in range(first, last + 1):
            if lineno in seen:
                continue  # a nested function's lines belong to its outer function too
            seen.add(lineno)
            line = lines[lineno - 1]
            if not _is_code(line) or line.rstrip().endswith(("\\", '"""', "'''")):
                continue
            indent = len(line) - len(line.lstrip())
            content = line.rstrip()
            begin = starts[lineno - 1]
            doc, mid = cut(begin + indent, begin + len(content))
            out["line"].append(Hole("line", path, lineno, doc, begin + indent, mid))
            previous = next((p for p in reversed(lines[: lineno - 1]) if _is_code(p)), "")
            if lineno > first and auto_indent(previous) == indent:
                out["indent"].append(Hole("indent", path, lineno, doc, begin + indent, mid))
            elif lineno > first:
                auto = " " * auto_indent(previous)
                doc = text[:begin] + auto + text[begin + len(content) :]
                out["reindent"].append(
                    Hole("reindent", path, lineno, doc, begin + len(auto), content)
                )
            at = midline_cut(content, indent)
            if at is not None:
                doc, mid = cut(begin + at, begin + len(content))
                out["midline"].append(Hole("midline", path, lineno, doc, begin + at, mid))
        body = lines[first - 1 : last]
        chars = sum(len(b) + 1 for b in body)
        if len(body) <= MAX_BODY_LINES and chars <= MAX_BODY_CHARS and _is_code(body[0]):
            indent = len(body[0]) - len(body[0].lstrip())
            begin = starts[first - 1] + indent
            end = starts[last - 1] + len(lines[last - 1].rstrip())
            doc, mid = cut(begin, end)
            out["body"].append(Hole("body", path, first, doc, begin, mid))
    return out


def midline_cut(content: str, indent: int, not_before: str = " ") -> int | None:
    """Where a line's mid-line cursor goes: after one of `MIDLINE_AFTER` and before none
    of `not_before`, one per line, chosen from the line's own text; None where none fits."""
    cuts = [
        i
        for i in range(indent + 1, len(content) - 1)
        if content[i - 1] in MIDLINE_AFTER and content[i] not in not_before
    ]
    return cuts[hash_text(content) % len(cuts)] if cuts else None


def hash_text(s: str) -> int:
    """A stable hash (Python's `hash` of str is salted per process)."""
    h = 2166136261
    for ch in s.encode():
        h = ((h ^ ch) * 16777619) & 0xFFFFFFFF
    return h


Candidates = Callable[[str, str], dict[HoleKind, list[Hole]]]
"""Every hole of each kind in a file, from its path and text."""


def punch_holes(
    sources: list[tuple[str, str]],
    per_kind: int,
    seed: int,
    candidates: Candidates = python_candidates,
) -> list[Hole]:
    """`per_kind` holes of each kind from `(path, text)` sources, sampled with `seed`."""
    pools: dict[HoleKind, list[Hole]] = {k: [] for k in KINDS}
    for path, text in sources:
        for kind, holes in candidates(path, text).items():
            pools[kind] += holes
    rng = random.Random(seed)
    chosen: list[Hole] = []
    for kind in KINDS:
        pool = pools[kind]
        chosen += rng.sample(pool, min(per_kind, len(pool)))
    return chosen
