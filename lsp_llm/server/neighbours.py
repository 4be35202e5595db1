"""The extra context of one editor session: where its chunks come from, and when the
selection shown to the model changes.

Document notifications touch regions of the ring (`context.extra.ChunkRing`): `didOpen`
the top of the file, `didChange` each edited line, a completion request the cursor's line.
For a completion, `extra_for` reads the touched regions of the other documents, adds the
outlines of the workspace modules the file imports (open documents first; over stdio also
files on disk inside the workspace folders, at most `MAX_FILE_BYTES`, not binary; a `--tcp`
daemon reads no files for a client), ranks them and fits them into the token share.

The selection stays as it is while the user types near where it was made: it is made
again when another document's chunks changed, when the cursor is `REFRESH_LINES` away, or
when settings change. So between keystrokes the prompt's first tokens stay the same and
the engine's cached prefix covers them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types

from lsp_llm.context.extra import Chunk, ChunkRing, fits, rank, window
from lsp_llm.context.outline import imports, module_paths, outline
from lsp_llm.generation.budget import Encodes, readable

MAX_FILE_BYTES = 1_000_000
"""Files (on disk or open) larger than this, in bytes or characters, give no extra
context, and the imports of a larger cursor file are not looked up."""
MAX_IMPORTS = 8
"""Imported modules whose outlines are considered per selection."""
REFRESH_LINES = 16
"""How far the cursor moves before the selection is made again."""


@dataclass(frozen=True)
class Selection:
    chunks: tuple[Chunk, ...]
    line: int
    version: int
    budget: int


@dataclass(frozen=True)
class Place:
    """Where a document lives: its workspace folder (None: outside every one), the
    folder's name and the path within it."""

    repo: str
    relative: str
    folder: Path | None = None


class Neighbourhood:
    def __init__(self) -> None:
        self.ring = ChunkRing()
        self._selections: dict[str, Selection] = {}
        self._outlines: dict[tuple[str, int, int, tuple[str, ...]], str] = {}
        self._latest: dict[str, tuple[Path, str]] = {}

    # what the notifications and requests tell ------------------------------------------
    def opened(self, uri: str, latest: tuple[Path, str] | None = None) -> None:
        self.ring.touch(uri, 0)
        self._remember(uri, latest)

    def _remember(self, uri: str, latest: tuple[Path, str] | None) -> None:
        """The document's path and current text (the string the workspace holds, not a
        copy), so that its touched regions can still be read when it closes."""
        if latest is not None:
            self._latest[uri] = latest

    def changed(
        self,
        uri: str,
        edits: list[tuple[int, int]] | None,
        latest: tuple[Path, str] | None = None,
    ) -> None:
        """`edits`: each change's first and last line (after the change), or None when the
        whole text was replaced; `latest`: the document's path and text after it."""
        self._remember(uri, latest)
        if edits is None:
            self.ring.moved(uri)
            self.ring.touch(uri, 0)
            return
        for first, last in edits:
            self.ring.touch(uri, first, last)

    def closed(self, uri: str, folders: list[Path] | None = None) -> None:
        """A document closed: the regions touched in it are read now, from its last text
        (the workspace no longer has it)."""
        self._selections.pop(uri, None)
        latest = self._latest.pop(uri, None)
        if latest is not None and len(latest[1]) <= MAX_FILE_BYTES:
            self.ring.read(uri, self.place(latest[0], folders or []).relative, latest[1])

    def forget(self) -> None:
        """Settings changed: every selection is made again."""
        self._selections.clear()

    # the selection ----------------------------------------------------------------------
    def extra_for(
        self,
        uri: str,
        text: str,
        offset: int,
        *,
        folders: list[Path],
        documents: dict[str, tuple[Path, str]],
        read_disk: bool,
        tokenizer: Encodes,
        budget: int,
        language: str,
    ) -> tuple[Chunk, ...]:
        """The chunks for a completion at `offset` of `uri`. `documents`: the open
        documents' paths and texts by URI; `folders`: the workspace folders."""
        line = text.count("\n", 0, offset)
        self.ring.touch(uri, line)

        def source(other: str) -> tuple[str, str] | None:
            found = documents.get(other)
            if found is None or len(found[1]) > MAX_FILE_BYTES:
                return None  # closed, or too large to be worth reading from
            return self.place(found[0], folders).relative, found[1]

        self.ring.flush(source, keep=uri)
        version = self.ring.version(excluding=uri)
        old = self._selections.get(uri)
        if (
            old is not None
            and old.version == version
            and old.budget == budget
            and abs(old.line - line) < REFRESH_LINES
        ):
            return old.chunks
        candidates = self.ring.chunks()
        path = documents[uri][0] if uri in documents else None
        if language == "python" and path is not None and len(text) <= MAX_FILE_BYTES:
            candidates = self._imported(text, path, folders, documents, read_disk) + candidates
        ranked = rank(candidates, window(text, offset), uri, own=text)
        chosen = tuple(fits(ranked, budget, tokenizer))
        self._selections[uri] = Selection(chosen, line, version, budget)
        return chosen

    @staticmethod
    def place(path: Path, folders: list[Path]) -> Place:
        for folder in folders:
            try:
                return Place(folder.name, path.relative_to(folder).as_posix(), folder)
            except ValueError:
                continue
        return Place("", path.name)

    def _imported(
        self,
        text: str,
        path: Path,
        folders: list[Path],
        documents: dict[str, tuple[Path, str]],
        read_disk: bool,
    ) -> list[Chunk]:
        """Outlines of the workspace modules `text` imports (what it takes from them)."""
        here = self.place(path, folders)
        folder = here.folder
        if folder is None:
            return []
        by_path = {p: (u, t) for u, (p, t) in documents.items()}
        out: list[Chunk] = []
        for imp in imports(text):
            if len(out) >= MAX_IMPORTS:
                break
            for relative in module_paths(imp.module, here.relative):
                target = folder / relative
                found = by_path.get(target)
                if found is not None and len(found[1]) > MAX_FILE_BYTES:
                    continue
                if found is not None:
                    body = outline(found[1], imp.names)
                    uri = found[0]
                elif read_disk:
                    body = self._outline_on_disk(folder, target, imp.names)
                    uri = target.as_uri()
                else:
                    continue
                if body:
                    out.append(Chunk(uri, relative, 0, readable(body) + "\n", imported=True))
                    break
        return out

    def _outline_on_disk(self, folder: Path, target: Path, names: tuple[str, ...]) -> str:
        """The outline of a workspace file, or "" when it is outside the folder (links
        included), missing, too large or binary."""
        try:
            real = Path(os.path.realpath(target))
            if not real.is_relative_to(Path(os.path.realpath(folder))) or not real.is_file():
                return ""
            stat = real.stat()
            if stat.st_size > MAX_FILE_BYTES:
                return ""
            key = (str(real), stat.st_mtime_ns, stat.st_size, names)
            cached = self._outlines.get(key)
            if cached is not None:
                return cached
            data = real.read_bytes()
        except OSError:
            return ""
        if b"\0" in data:
            return ""
        body = outline(data.decode("utf-8", errors="replace"), names)
        if len(self._outlines) > 256:
            self._outlines.clear()
        self._outlines[key] = body
        return body


def changed_lines(
    ring: ChunkRing, uri: str, params: types.DidChangeTextDocumentParams
) -> list[tuple[int, int]] | None:
    """Each ranged change of a `didChange` as the first and last line it leaves (None for
    a whole-text change); a change that adds or removes lines tells `ring` they moved."""
    out = []
    for change in params.content_changes:
        if not isinstance(change, types.TextDocumentContentChangePartial):
            return None
        rng = change.range
        first, last = int(rng.start.line), int(rng.end.line)
        added = change.text.count("\n")
        if added or last != first:
            ring.moved(uri)
        out.append((first, first + added))
    return out
