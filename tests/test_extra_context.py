"""Extra context for completions: the chunk ring, ranking, budgets, formats per tokenizer,
what is read from disk, and stability between keystrokes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lsp_llm.context.extra import Chunk, ChunkRing, rank, window
from lsp_llm.context.outline import imports, module_paths, outline
from lsp_llm.context.prompts import EditorContext, completion_prompt
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.server.neighbours import Neighbourhood

BUNDLED = Path(__file__).parent.parent / "lsp_llm" / "models" / "bundled"

SHAPES = '''"""Shapes."""


def frobnicate_widget(width: int, height: int, *, scale: float = 1.0) -> float:
    """Area of a widget, scaled."""
    return width * height * scale


class WidgetBox:
    """A box of widgets."""

    def add_widget(self, width: int, height: int) -> None:
        self.total += frobnicate_widget(width, height)

    def _private(self):
        pass
'''
MAIN = (
    "from .shapes import frobnicate_widget, WidgetBox\n\n\n"
    "def report(width, height):\n    box = WidgetBox()\n    area = frob"
)


@pytest.fixture(scope="module")
def qwen_info() -> TokenizerInfo:
    from transformers import AutoTokenizer

    return TokenizerInfo(AutoTokenizer.from_pretrained(BUNDLED))


def workspace(tmp_path: Path) -> tuple[Path, dict[str, tuple[Path, str]]]:
    pkg = tmp_path / "proj" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "shapes.py").write_text(SHAPES)
    (pkg / "main.py").write_text(MAIN)
    main = pkg / "main.py"
    return tmp_path / "proj", {main.as_uri(): (main, MAIN)}


def ask(n, root, docs, info, text=MAIN, read_disk=True, budget=200):
    """The extra context `n` gives at the end of `text` (the first document of `docs`)."""
    uri = next(iter(docs))
    return n.extra_for(
        uri,
        text,
        len(text),
        folders=[root],
        documents=docs,
        read_disk=read_disk,
        tokenizer=info.tokenizer,
        budget=budget,
        language="python",
    )


def test_imports_and_outline_from_code_that_does_not_parse():
    text = "import os.path as p\nfrom .shapes import (frobnicate_widget,\n  WidgetBox)\ndef f(:\n"
    found = imports(text)
    assert [(i.module, i.names) for i in found] == [
        ("os.path", ()),
        (".shapes", ("frobnicate_widget", "WidgetBox")),
    ]
    assert module_paths(".shapes", "pkg/main.py") == ["pkg/shapes.py", "pkg/shapes/__init__.py"]
    assert module_paths("...x", "pkg/main.py") == []  # climbs out of the workspace
    lines = outline(SHAPES, ("WidgetBox",)).splitlines()
    assert lines == [
        "class WidgetBox:",
        '    """A box of widgets."""',
        "    def add_widget(self, width: int, height: int) -> None:",
        "        ...",
    ]
    assert "def frobnicate_widget(" in outline(SHAPES)  # no names: every public definition


def test_the_ring_reads_regions_of_other_documents_only_and_stays_bounded():
    ring = ChunkRing(size=3, lines=4)
    texts = {
        f"file:///{n}.py": (f"{n}.py", "".join(f"{n}_{i} = {i}\n" for i in range(40)))
        for n in "abc"
    }
    ring.touch("file:///a.py", 9)
    ring.touch("file:///b.py", 0)
    ring.flush(texts.get, keep="file:///a.py")  # typing in a.py: only b.py is read
    assert [(c.path, c.start_line) for c in ring.chunks()] == [("b.py", 0)]
    assert ring.chunks()[0].text == "".join(f"b_{i} = {i}\n" for i in range(4))
    before = ring.version(excluding="file:///a.py")
    ring.flush(texts.get, keep="file:///b.py")  # now a.py's region is read
    assert ring.version(excluding="file:///b.py") == 1 and ring.version("file:///a.py") == before
    for line in range(0, 40, 4):
        ring.touch("file:///c.py", line)
    ring.flush(texts.get, keep=None)
    assert len(ring.chunks()) == 3


def test_ranking_keeps_related_chunks_and_drops_the_rest():
    around = window(MAIN, len(MAIN))
    chunks = [
        Chunk("file:///x.py", "x.py", 0, "def unrelated(alpha, beta):\n    return alpha\n"),
        Chunk("file:///s.py", "s.py", 0, SHAPES),
        Chunk("file:///s2.py", "s2.py", 0, SHAPES),  # the same text again
        Chunk("file:///main.py", "main.py", 0, SHAPES),  # the cursor's own document
        Chunk("file:///o.py", "o.py", 0, "WidgetBox = 1\n", imported=True),
        Chunk("file:///copy.py", "copy.py", 0, MAIN.replace("frob", "frobnicate_widget(")),
    ]
    ranked = rank(chunks, around, "file:///main.py")
    assert [c.path for c in ranked] == ["o.py", "s2.py"]


def test_extra_context_in_the_models_format_and_inside_the_budget(tmp_path, qwen_info):
    root, docs = workspace(tmp_path)
    uri = next(iter(docs))
    chunks = ask(Neighbourhood(), root, docs, qwen_info, budget=60)
    assert [c.path for c in chunks] == ["pkg/shapes.py"] and chunks[0].imported
    assert len(qwen_info.encode(chunks[0].text)) <= 60  # cut to the share
    ctx = EditorContext(MAIN, len(MAIN), "python", str(docs[uri][0]), chunks, "pkg/main.py", "proj")
    prompt = completion_prompt(qwen_info, ctx, context_tokens=256)
    assert prompt.text.startswith("<|repo_name|>proj\n<|file_sep|>pkg/shapes.py\ndef frobnicate")
    assert "<|file_sep|>pkg/main.py\n<|fim_prefix|>from .shapes" in prompt.text
    vocab = qwen_info.tokenizer.get_vocab()
    assert prompt.token_ids[0] == vocab["<|repo_name|>"]
    assert prompt.token_ids.count(vocab["<|file_sep|>"]) == 2
    assert len(prompt.token_ids) <= 256

    plain = TokenizerInfo.by_characters()  # no tokenizer known: path comments
    text = completion_prompt(plain, ctx, context_tokens=256, style="prefix").text
    assert text.startswith("# pkg/shapes.py\ndef frobnicate") and "# pkg/main.py\nfrom ." in text


def test_smollm2_reads_other_files_with_its_own_tokens(smollm2_folder):
    from transformers import AutoTokenizer

    info = TokenizerInfo(AutoTokenizer.from_pretrained(smollm2_folder))
    chunk = Chunk("file:///p/s.py", "pkg/shapes.py", 0, SHAPES)
    ctx = EditorContext(MAIN, len(MAIN), "python", "/p/main.py", (chunk,), "pkg/main.py", "p")
    prompt = completion_prompt(info, ctx, context_tokens=512, style="prefix")
    assert prompt.text.startswith('<repo_name>p<file_sep>pkg/shapes.py\n"""Shapes."""')
    assert "<file_sep>pkg/main.py\nfrom .shapes" in prompt.text
    vocab = info.tokenizer.get_vocab()
    assert prompt.token_ids[0] == vocab["<repo_name>"]


def test_nothing_is_read_outside_the_workspace_or_too_big_or_binary(tmp_path, qwen_info):
    root, docs = workspace(tmp_path)
    uri = next(iter(docs))
    outside = tmp_path / "secret.py"
    outside.write_text("def frobnicate_widget_secret(): ...\n")
    (root / "pkg" / "shapes.py").unlink()
    os.symlink(outside, root / "pkg" / "shapes.py")  # a link out of the workspace
    kwargs = dict(
        folders=[root], documents=docs, tokenizer=qwen_info.tokenizer, budget=200, language="python"
    )
    assert Neighbourhood().extra_for(uri, MAIN, len(MAIN), read_disk=True, **kwargs) == ()
    (root / "pkg" / "shapes.py").unlink()
    (root / "pkg" / "shapes.py").write_bytes(SHAPES.encode() + b"\0")  # binary
    assert Neighbourhood().extra_for(uri, MAIN, len(MAIN), read_disk=True, **kwargs) == ()
    (root / "pkg" / "shapes.py").write_text(SHAPES + "#" * 1_000_001)  # too large
    assert Neighbourhood().extra_for(uri, MAIN, len(MAIN), read_disk=True, **kwargs) == ()
    (root / "pkg" / "shapes.py").write_text(SHAPES)
    assert Neighbourhood().extra_for(uri, MAIN, len(MAIN), read_disk=False, **kwargs) == ()
    assert Neighbourhood().extra_for(uri, MAIN, len(MAIN), read_disk=True, **kwargs) != ()


def test_the_selection_is_stable_between_keystrokes(tmp_path, qwen_info):
    """Typing on the line keeps the extra context as it was, so the next prompt shares
    every token up to the keystroke with the last one; a change in another open file, or
    the cursor far away, makes it again."""
    root, docs = workspace(tmp_path)
    uri = next(iter(docs))
    other = root / "pkg" / "widgets.py"
    docs[other.as_uri()] = (
        other,
        "class WidgetBox:\n    def add_widget(self, w, h):\n        ...\n",
    )
    n = Neighbourhood()
    n.opened(other.as_uri())
    kwargs = dict(
        folders=[root],
        documents=docs,
        read_disk=True,
        tokenizer=qwen_info.tokenizer,
        budget=200,
        language="python",
    )
    first = n.extra_for(uri, MAIN, len(MAIN), **kwargs)
    assert {c.path for c in first} == {"pkg/shapes.py", "pkg/widgets.py"}
    typed = MAIN + "nicate"
    docs[uri] = (docs[uri][0], typed)
    second = n.extra_for(uri, typed, len(typed), **kwargs)
    assert second is first
    prompts = []
    for text in (MAIN, typed):
        ctx = EditorContext(
            text, len(text), "python", str(docs[uri][0]), first, "pkg/main.py", "proj"
        )
        prompts.append(completion_prompt(qwen_info, ctx, context_tokens=512, order="spm").token_ids)
    shared = next(
        (i for i, (a, b) in enumerate(zip(*prompts, strict=False)) if a != b),
        min(map(len, prompts)),
    )
    extra_tokens = len(prompts[0]) - len(
        completion_prompt(
            qwen_info, EditorContext(MAIN, len(MAIN)), context_tokens=512, order="spm"
        ).token_ids
    )
    assert shared >= extra_tokens + 20  # the extra context and the code up to the edit
    docs[other.as_uri()] = (
        other,
        docs[other.as_uri()][1] + "\n\ndef widget_total(boxes):\n    pass\n",
    )
    n.changed(other.as_uri(), [(3, 5)])
    third = n.extra_for(uri, typed, len(typed), **kwargs)
    assert third is not first and any("widget_total" in c.text for c in third)


def test_huge_or_binary_open_documents_give_no_context(tmp_path, qwen_info):
    root, docs = workspace(tmp_path)
    huge = root / "pkg" / "huge.py"
    binary = root / "pkg" / "blob.py"
    docs[huge.as_uri()] = (huge, "frobnicate_widget(WidgetBox)\n" * 50_000)  # 1.4 MB
    docs[binary.as_uri()] = (binary, "frobnicate_widget(WidgetBox)\x00\n" * 10)
    n = Neighbourhood()
    n.opened(huge.as_uri())
    n.opened(binary.as_uri())
    chunks = ask(n, root, docs, qwen_info, read_disk=False)
    assert chunks == ()


def test_edits_that_move_lines_drop_the_regions_read_before():
    from lsprotocol import types

    from lsp_llm.server.neighbours import changed_lines

    ring = ChunkRing(size=8, lines=4)
    text = "".join(f"b_{i} = {i}\n" for i in range(40))
    ring.touch("file:///b.py", 10, 21)  # a paste over lines 10-21: every region in it
    ring.flush(lambda uri: ("b.py", text), keep=None)
    assert [c.start_line for c in ring.chunks()] == [8, 12, 16, 20]

    def params(*changes) -> types.DidChangeTextDocumentParams:
        doc = types.VersionedTextDocumentIdentifier(uri="file:///b.py", version=2)
        return types.DidChangeTextDocumentParams(doc, list(changes))

    def change(first, last, new_text):
        rng = types.Range(types.Position(first, 0), types.Position(last, 0))
        return params(types.TextDocumentContentChangePartial(range=rng, text=new_text))

    assert changed_lines(ring, "file:///b.py", change(3, 3, "x")) == [(3, 3)]
    assert len(ring.chunks()) == 4  # a change within a line moves nothing
    assert changed_lines(ring, "file:///b.py", change(3, 5, "y\nz")) == [(3, 4)]
    assert ring.chunks() == []  # lines moved: what was read is stale
    whole = params(types.TextDocumentContentChangeWholeDocument(text="new"))
    assert changed_lines(ring, "file:///b.py", whole) is None


def test_regions_of_a_closed_document_are_read_when_it_closes(tmp_path):
    """The workspace drops a document's text before the server hears `didClose`: the
    regions touched in it are read from the text last seen."""
    path = tmp_path / "proj" / "b.py"
    uri = path.as_uri()
    text = "".join(f"b_{i} = {i}\n" for i in range(100))
    n = Neighbourhood()
    n.opened(uri, (path, text))
    edited = text.replace("b_50 = 50", "b_50 = 5000")
    n.changed(uri, [(50, 50)], (path, edited))
    assert n.ring.chunks() == []  # nothing is read while the user is in the file
    n.closed(uri, [tmp_path / "proj"])
    chunks = {c.start_line: c for c in n.ring.chunks()}
    assert sorted(chunks) == [0, 32] and "b_50 = 5000" in chunks[32].text
    assert chunks[32].path == "b.py"
