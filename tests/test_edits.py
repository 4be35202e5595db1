"""didChange: many edits cost about one pass over the document (work counted in characters
written), the result is what pygls computes edit by edit, and a change with a range that
does not address the document is refused whole: the document is out of sync, requests on
it get a clear error, the user is told once, and sending it whole again repairs it."""

from __future__ import annotations

import random

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.workspace import TextDocument
from pytest_lsp import LanguageClient

from lsp_llm.server.edits import EditError, apply_changes
from tests.lsp_helpers import CONFIG, inline_params, open_doc, start_on_tiny


def edit(l1: int, c1: int, l2: int, c2: int, text: str) -> types.TextDocumentContentChangePartial:
    return types.TextDocumentContentChangePartial(
        range=types.Range(types.Position(l1, c1), types.Position(l2, c2)), text=text
    )


def pygls_result(text: str, changes: list) -> str:
    doc = TextDocument("file:///x.py", text)
    for change in changes:
        doc.apply_change(change)
    return doc.source


def test_a_thousand_edits_on_50000_lines_cost_about_one_pass():
    text = "".join(f"value_{i} = {i} * 2  # a line of code\n" for i in range(50_000))
    changes = [edit(100 + i * 40, 0, 100 + i * 40, 0, "x") for i in range(1000)]
    applied = apply_changes(text, changes, "utf-16")
    assert applied.text.count("xvalue_") == 1000 and len(applied.text) == len(text) + 1000
    # one join of the document plus the lines the edits touched (pygls: 1000 documents)
    assert applied.copied < 2 * len(text)
    one = apply_changes(text, changes[:1], "utf-16")
    assert applied.copied < 1.1 * one.copied


def test_the_result_is_pygls_result_edit_by_edit():
    rng = random.Random(0)
    text = "def f(x):\n    return x  # é😀 done\n\nprint(f(1))\r\nend"
    for _ in range(300):
        lines = text.split("\n")
        l1 = rng.randrange(len(lines))
        l2 = rng.randrange(l1, len(lines))
        c1 = rng.randrange(len(lines[l1]) + 1) if lines[l1].isascii() else 0
        c2 = rng.randrange(len(lines[l2]) + 1) if lines[l2].isascii() else 0
        if l1 == l2 and c2 < c1:
            c1, c2 = c2, c1
        change = edit(l1, c1, l2, c2, rng.choice(["", "a", "\n", "b\nc", "😀", "  "]))
        expected = pygls_result(text, [change])
        text = apply_changes(text, [change], "utf-16").text
        assert text == expected


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (edit(1, 5, 1, 2, "z"), "ends before it starts"),
        (edit(2, 0, 1, 0, "z"), "ends before it starts"),
        (edit(0, 0, 9, 0, "z"), "past the end"),
        (edit(0, 5, 0, 5, "z"), "inside a character"),  # between the surrogates of 😀
    ],
)
def test_a_range_that_does_not_address_the_document_is_refused(change, why):
    with pytest.raises(EditError, match=why):
        apply_changes("a😀b\nline two\n", [edit(0, 0, 0, 0, "ok "), change], "utf-16")


URI = "file:///tmp/lsp-llm-edits.py"
pytestmark_server = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, tiny):
    await start_on_tiny(lsp_client, tiny, completion={"maxNewTokens": 2})
    yield
    await lsp_client.shutdown_session()


def change(client: LanguageClient, version: int, *changes) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=URI), list(changes)
        )
    )


@pytestmark_server
async def test_a_bad_range_puts_the_document_out_of_sync_until_it_comes_whole(client):
    open_doc(client, URI, "def f(x):\n    return x\n")
    assert isinstance(
        await client.text_document_inline_completion_async(inline_params(URI, 1, 12)),
        types.InlineCompletionList,
    )
    told = len(client.messages)
    change(client, 2, edit(1, 8, 1, 4, "y"))  # inverted
    change(client, 3, edit(0, 0, 0, 0, "# more\n"))  # on a copy known to differ: ignored
    with pytest.raises(Exception, match="out of sync"):
        await client.text_document_inline_completion_async(inline_params(URI, 1, 12))
    out = [m for m in client.messages[told:] if "out of sync" in m.message]
    assert len(out) == 1 and out[0].type == types.MessageType.Error
    change(
        client, 4, types.TextDocumentContentChangeWholeDocument(text="def g(y):\n    return y\n")
    )
    assert isinstance(
        await client.text_document_inline_completion_async(inline_params(URI, 1, 12)),
        types.InlineCompletionList,
    )
