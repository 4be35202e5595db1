"""Training data for the bundled models: the CPython standard library's own Python
sources (PSF licence), with a fixed slice of modules held out for evaluation.

Examples are of three kinds, mixed: plain code, fill-in-the-middle (middles shaped like
editor requests: rest of a line, a few lines, a function body; in both prefix-suffix-middle
and suffix-prefix-middle order) and chat turns built from functions and their docstrings.
"""

from __future__ import annotations

import ast
import random
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lsp_llm.config import DEFAULT_SYSTEM_PROMPT

EXCLUDED_DIRS = {"test", "tests", "encodings", "pydoc_data", "site-packages", "lib2to3", "idlelib"}
HELD_OUT = (
    "bisect.py",
    "calendar.py",
    "colorsys.py",
    "csv.py",
    "difflib.py",
    "fractions.py",
    "heapq.py",
    "shlex.py",
    "statistics.py",
    "textwrap.py",
    "json/",
    "html/",
)
"""Never trained on: the evaluation slice (paths relative to the stdlib folder)."""


CURSOR_AFTER = " (.,[=:"
"""Characters after which editors most often ask mid-line (a token boundary)."""
FIM_PREFIX_CHARS = (200, 1100)
FIM_SUFFIX_CHARS = (0, 400)
"""Ranges of the context kept around a middle, in characters: about what a completion
prompt of a few hundred tokens holds, most of it before the cursor."""


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def is_held_out(relative: str) -> bool:
    return any(relative == h or relative.startswith(h) for h in HELD_OUT)


@dataclass
class SourceFile:
    path: str
    text: str


def load_sources(held_out: bool, root: Path | None = None) -> list[SourceFile]:
    root = root or stdlib_root()
    out: list[SourceFile] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if set(path.relative_to(root).parts[:-1]) & EXCLUDED_DIRS:
            continue
        if is_held_out(relative) != held_out:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if 200 <= len(text) <= 400_000:
            out.append(SourceFile(relative, text))
    return out


@dataclass
class Function:
    source: str
    """The whole function, dedented to column 0."""
    without_docstring: str
    docstring: str
    summary: str


def _dedent_block(lines: list[str]) -> str:
    import textwrap

    return textwrap.dedent("".join(lines)).rstrip() + "\n"


def functions_with_docstrings(text: str) -> list[Function]:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = text.splitlines(keepends=True)
    found: list[Function] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        doc = ast.get_docstring(node)
        if not doc or len(doc) < 20 or node.end_lineno is None or not node.body:
            continue
        start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        source_lines = lines[start : node.end_lineno]
        if len(source_lines) > 60:
            continue
        doc_node = node.body[0]
        assert doc_node.end_lineno is not None
        rest = lines[start : doc_node.lineno - 1] + lines[doc_node.end_lineno : node.end_lineno]
        if len(node.body) == 1:
            continue  # nothing but the docstring
        summary = doc.strip().split("\n\n")[0].replace("\n", " ")
        found.append(Function(_dedent_block(source_lines), _dedent_block(rest), doc, summary))
    return found


@dataclass
class Example:
    kind: str
    parts: list[tuple[str, bool]]
    """(text or special token, counted in the loss) in order; specials are exact names."""


SPECIAL = {
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
}


def _window(text: str, rng: random.Random, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    lines = text.splitlines(keepends=True)
    start = rng.randrange(len(lines))
    out: list[str] = []
    size = 0
    for line in lines[start:]:
        if size + len(line) > max_chars:
            break
        out.append(line)
        size += len(line)
    return "".join(out) or text[:max_chars]


def plain_example(text: str, rng: random.Random, max_chars: int) -> Example:
    return Example("code", [(_window(text, rng, max_chars), True)])


def _middle_span(window: str, rng: random.Random) -> tuple[int, int] | None:
    """Character span of a middle shaped like an editor request."""
    lines = window.splitlines(keepends=True)
    if len(lines) < 3:
        return None
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    content = [i for i, line in enumerate(lines) if line.strip()]
    i = rng.choice(content)
    line = lines[i]
    indent = len(line) - len(line.lstrip())
    kind = rng.random()
    if kind < 0.45:  # rest of the line from inside it, mostly from a token boundary
        body = line.rstrip("\n")
        bounds = [
            c
            for c in range(indent + 1, len(body))
            if body[c - 1] in CURSOR_AFTER and body[c] != " "
        ]
        if bounds and rng.random() < 0.7:
            col = rng.choice(bounds)
        else:
            col = rng.randrange(indent, max(indent + 1, len(body)))
        return starts[i] + col, starts[i] + len(body)
    if kind < 0.8:  # one to five whole lines from the cursor after indentation
        j = min(len(lines) - 1, i + rng.randrange(0, 5))
        end = starts[j] + len(lines[j].rstrip("\n"))
        return starts[i] + indent, end
    # a block: the lines after a line ending with ':' that are indented deeper
    if not line.rstrip().endswith(":"):
        return None
    j = i + 1
    while j < len(lines) and (
        not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
    ):
        j += 1
    if j == i + 1:
        return None
    end = starts[j - 1] + len(lines[j - 1].rstrip("\n"))
    body_indent = len(lines[i + 1]) - len(lines[i + 1].lstrip())
    return starts[i + 1] + body_indent, end


def _trim_context(window: str, a: int, b: int, rng: random.Random) -> tuple[int, int]:
    """Where the prefix starts and the suffix ends: whole lines, as much as an editor's
    completion prompt holds (most of the budget before the cursor, a little after), always
    keeping the cursor's own line."""
    before = rng.randint(*FIM_PREFIX_CHARS)
    after = rng.randint(*FIM_SUFFIX_CHARS)
    line_start = window.rfind("\n", 0, a) + 1
    start = 0 if a - before <= 0 else window.find("\n", a - before - 1) + 1
    start = min(start, line_start)
    line_end = window.find("\n", b)
    if line_end < 0:
        return start, len(window)
    cut = window.rfind("\n", line_end, b + after + 1)
    return start, max(line_end, cut)


SPM_RATE = 0.5
"""The share of FIM examples in suffix-prefix-middle order, as StarCoder was trained. In
that order an edit near the cursor leaves the suffix and most of the prefix in place, so
the server's next prompt re-reads only what changed (see `context.prompts`)."""


def fim_example(
    text: str, rng: random.Random, max_chars: int, spm_rate: float = SPM_RATE
) -> Example | None:
    """A fill-in-the-middle example in prefix-suffix-middle order
    (`PRE prefix SUF suffix MID middle`) or, with probability `spm_rate`, in the
    suffix-prefix-middle order StarCoder and Code Llama use (`PRE SUF suffix MID prefix
    middle`, where the middle simply continues the prefix)."""
    window = _window(text, rng, max_chars)
    span = _middle_span(window, rng)
    if span is None or span[1] <= span[0]:
        return None
    a, b = span
    start, end = _trim_context(window, a, b, rng)
    prefix, suffix, middle = window[start:a], window[b:end], window[a:b]
    if rng.random() < spm_rate:
        order = [
            ("<|fim_prefix|>", True),
            ("<|fim_suffix|>", True),
            (suffix, True),
            ("<|fim_middle|>", True),
            (prefix, True),
        ]
    else:
        order = [
            ("<|fim_prefix|>", True),
            (prefix, True),
            ("<|fim_suffix|>", True),
            (suffix, True),
            ("<|fim_middle|>", True),
        ]
    return Example("fim", [*order, (middle, True), ("<|endoftext|>", True)])


def _chat(user: str, answer: str) -> list[tuple[str, bool]]:
    return [
        ("<|im_start|>", False),
        (f"system\n{DEFAULT_SYSTEM_PROMPT}", False),
        ("<|im_end|>", False),
        ("\n", False),
        ("<|im_start|>", False),
        (f"user\n{user}", False),
        ("<|im_end|>", False),
        ("\n", False),
        ("<|im_start|>", False),
        ("assistant\n", False),
        (answer, True),
        ("<|im_end|>", True),
    ]


def chat_example(fn: Function, rng: random.Random) -> Example:
    kind = rng.random()
    if kind < 0.4:
        what = fn.summary[0].lower() + fn.summary[1:]
        user = (
            rng.choice(
                [
                    "Write a Python function that",
                    "Write a function that",
                    "Implement a function that",
                ]
            )
            + f" {what.rstrip('.')}."
        )
        return Example("chat", _chat(user, f"```python\n{fn.source}```"))
    if kind < 0.75:
        user = rng.choice(
            ["What does this function do?", "Explain this function.", "What does this code do?"]
        )
        return Example("chat", _chat(f"```python\n{fn.without_docstring}```\n\n{user}", fn.summary))
    return Example(
        "chat",
        _chat(
            f"Add a docstring to this function.\n\n```python\n{fn.without_docstring}```",
            f"```python\n{fn.source}```",
        ),
    )


def _weights(sources: list[SourceFile]) -> list[int]:
    return [len(s.text) for s in sources]


def examples(
    sources: list[SourceFile],
    seed: int,
    max_chars: int = 1600,
    fim_chars: int = 2400,
    mix: tuple[float, float] = (0.15, 0.6),
    spm_rate: float = SPM_RATE,
) -> Iterator[Example]:
    """An endless, seeded stream: plain code, FIM and chat in the proportions of `mix`
    (plain, fim; the rest is chat). FIM middles are cut from windows of `fim_chars` and
    keep the context around them that a completion prompt would."""
    rng = random.Random(seed)
    weights = _weights(sources)
    functions = [f for s in sources for f in functions_with_docstrings(s.text)]
    while True:
        r = rng.random()
        if r >= mix[0] + mix[1] and functions:
            yield chat_example(rng.choice(functions), rng)
            continue
        text = rng.choices(sources, weights=weights)[0].text
        if r < mix[0]:
            yield plain_example(text, rng, max_chars)
        else:
            ex = fim_example(text, rng, fim_chars, spm_rate)
            if ex is not None:
                yield ex


def code_examples(sources: list[SourceFile], seed: int, max_chars: int = 1600) -> Iterator[Example]:
    """An endless, seeded stream of plain code windows (what fills the rest of a row)."""
    rng = random.Random(seed)
    weights = _weights(sources)
    while True:
        yield plain_example(rng.choices(sources, weights=weights)[0].text, rng, max_chars)
