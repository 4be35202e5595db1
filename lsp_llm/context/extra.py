"""Context from beyond the cursor's file, for completions: chunks of the other files the
user has open, edited or visited (a bounded ring, fed by the document notifications), and
the outlines of workspace modules the cursor's file imports. `select` ranks them by the
identifiers they share with the code around the cursor, drops duplicates and what shares
nothing, and fits them into a token share; `render` writes them the way the model read
other files in training (repository-level FIM tokens when it has them, path comments
otherwise). The block goes first in the prompt and stays the same between keystrokes, so
the engine's cached prefix still covers it.
"""

from __future__ import annotations

import keyword
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from lsp_llm.generation.budget import Encodes, encode_plain, readable, take_head

CHUNK_LINES = 32
"""Lines per chunk of a document (chunks start at multiples of this)."""
RING_SIZE = 24
"""Chunks the ring keeps (the least recently touched go first)."""
WINDOW_LINES = (24, 8)
"""Lines above and below the cursor whose identifiers rank the chunks."""

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
COMMON = frozenset(keyword.kwlist) | {
    "self",
    "cls",
    "None",
    "True",
    "False",
    "def",
    "return",
    "const",
    "function",
    "this",
    "var",
    "let",
    "str",
    "int",
    "len",
    "list",
    "dict",
}


def identifiers(text: str) -> frozenset[str]:
    return frozenset(IDENTIFIER.findall(text)) - COMMON


@dataclass(frozen=True)
class Chunk:
    uri: str
    path: str
    """Shown to the model: the file's path relative to its workspace folder."""
    start_line: int
    text: str
    imported: bool = False
    """An outline of a module the cursor's file imports (ranked first)."""

    @property
    def words(self) -> frozenset[str]:
        return identifiers(self.text)


def lines_at(text: str, first: int, count: int) -> str:
    """Lines `first` to `first + count` of `text` (found without splitting all of it)."""
    start = 0
    for _ in range(first):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    end = start
    for _ in range(count):
        end = text.find("\n", end) + 1
        if end == 0:
            return text[start:]
    return text[start:end]


class ChunkRing:
    """Recently touched regions of documents. `touch` marks where the user edits or looks;
    the region's text is read when the user is elsewhere (`flush`), so typing in a file
    costs nothing here until they leave it."""

    def __init__(self, size: int = RING_SIZE, lines: int = CHUNK_LINES) -> None:
        self.size, self.lines = size, lines
        self._chunks: OrderedDict[tuple[str, int], Chunk] = OrderedDict()
        self._pending: dict[str, set[int]] = {}
        self._changes: dict[str, int] = {}
        """Per document, how often its chunks changed (what `version` sums)."""

    def touch(self, uri: str, line: int, last: int | None = None) -> None:
        """Mark the region of `line` (through `last`: every region in between, at most
        the ring's size of them) to be read when the user is elsewhere."""
        first = line // self.lines * self.lines
        end = max(first, (last if last is not None else line) // self.lines * self.lines)
        end = min(end, first + (self.size - 1) * self.lines)
        pending = self._pending.setdefault(uri, set())
        pending.update(range(first, end + 1, self.lines))
        while len(pending) > self.size:
            pending.pop()

    def moved(self, uri: str) -> None:
        """Lines of `uri` were inserted or removed: the regions read from it no longer
        start where they did, so they are dropped (the touched ones are read again)."""
        stale = [k for k in self._chunks if k[0] == uri]
        for key in stale:
            del self._chunks[key]
        if stale:
            self._changes[uri] = self._changes.get(uri, 0) + 1

    def flush(self, source: Callable[[str], tuple[str, str] | None], keep: str | None) -> None:
        """Read the touched regions of every document but `keep` (the one being typed in):
        `source(uri)` gives its (path, text), or None when it is gone."""
        for uri in [u for u in self._pending if u != keep]:
            found = source(uri)
            if found is None:
                self._pending.pop(uri)
                continue
            self.read(uri, *found)

    def read(self, uri: str, path: str, text: str) -> None:
        """Read the touched regions of `uri`, whose text is `text`."""
        for start in sorted(self._pending.pop(uri, ())):
            body = readable(lines_at(text, start, self.lines))
            if body.strip() and "\x00" not in body:  # binary content is no context
                self._put(Chunk(uri, path, start, body))

    def _put(self, chunk: Chunk) -> None:
        key = (chunk.uri, chunk.start_line)
        old = self._chunks.pop(key, None)
        self._chunks[key] = chunk
        if old is None or old.text != chunk.text:
            self._changes[chunk.uri] = self._changes.get(chunk.uri, 0) + 1
        while len(self._chunks) > self.size:
            self._chunks.popitem(last=False)

    def chunks(self) -> list[Chunk]:
        return list(self._chunks.values())

    def version(self, excluding: str | None = None) -> int:
        """Grows whenever a chunk of a document other than `excluding` changes."""
        return sum(n for uri, n in self._changes.items() if uri != excluding)


def window(text: str, offset: int) -> str:
    """The code around the cursor whose identifiers rank the chunks."""
    above, below = WINDOW_LINES
    start = offset
    for _ in range(above):
        start = text.rfind("\n", 0, max(0, start - 1)) + 1
        if start == 0:
            break
    end = offset
    for _ in range(below):
        found = text.find("\n", end + 1)
        if found < 0:
            end = len(text)
            break
        end = found
    return text[start:end]


DEFINITION = re.compile(
    r"^[ \t]*(?:export[ \t]+)?(?:async[ \t]+)?"
    r"(?:def|class|function\*?|const|let|var|type|interface)[ \t]+([A-Za-z_$][\w$]*)"
    r"|^[ \t]*([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=(?!=)",
    re.M,
)
"""A line that defines a name: `def`/`class`/`function`/`const`…, or `name = …`."""


def defined(text: str) -> frozenset[str]:
    """The names `text` defines (functions, classes, variables, at any depth)."""
    return frozenset(a or b for a, b in DEFINITION.findall(text))


def rank(candidates: list[Chunk], around: str, uri: str, own: str = "") -> list[Chunk]:
    """The chunks worth showing for the code `around` the cursor of `uri` (whose whole text
    is `own`): none of its own document, none that repeats another's text or the code
    around the cursor. What a chunk is worth is the names it defines that the code around
    the cursor uses and its own file does not define (the code the cursor needs from
    elsewhere); a chunk that defines none is left out, as is an imported module's outline
    that shares no name with the code around the cursor. Imported outlines first, then by
    those names, then by shared identifiers (Jaccard), then the most recent."""
    near = identifiers(around)
    foreign = near - defined(own)
    near_lines = {ln.strip() for ln in around.splitlines() if ln.strip()}
    seen: set[str] = set()
    scored: list[tuple[tuple[float, ...], Chunk]] = []
    for i, chunk in reversed(list(enumerate(candidates))):  # a repeat: the latest is kept
        if chunk.uri == uri or chunk.text in seen or _mostly_in(chunk.text, near_lines):
            continue
        seen.add(chunk.text)
        words = chunk.words
        needed = len(defined(chunk.text) & foreign)
        if (needed if not chunk.imported else len(words & near)) == 0:
            continue
        jaccard = len(words & near) / len(words | near)
        scored.append(((float(chunk.imported), needed, jaccard, i), chunk))
    scored.sort(key=lambda s: s[0], reverse=True)
    return [c for _, c in scored]


def _mostly_in(text: str, lines: set[str]) -> bool:
    """Half or more of `text`'s lines are already among `lines` (a copy of the code around
    the cursor, from another document or an earlier state: nothing new to read)."""
    own = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return bool(own) and sum(ln in lines for ln in own) * 2 >= len(own)


def fits(chunks: list[Chunk], budget: int, tokenizer: Encodes) -> list[Chunk]:
    """The ranked chunks that fit `budget` tokens with their headers, the last one cut at a
    line if need be."""
    out: list[Chunk] = []
    left = budget
    for chunk in chunks:
        if left < 16:
            break
        # the chunk and its header (separator or comment, path, newline)
        n = len(encode_plain(tokenizer, chunk.text)) + len(encode_plain(tokenizer, chunk.path)) + 3
        if n > left:
            text = take_head(tokenizer, chunk.text, left)
            text = text[: text.rfind("\n") + 1] if "\n" in text else ""
            if text.strip():
                out.append(Chunk(chunk.uri, chunk.path, chunk.start_line, text, chunk.imported))
            break
        out.append(chunk)
        left -= n
    return out
