"""End to end over stdio: the real server in a subprocess, driven by pytest-lsp with the
recorded capabilities of VS Code and Neovim, on a tiny random model built by a fixture.

Suggestions are checked against the engine run directly on the same prompt, so the
protocol layer is shown to deliver exactly what the engine and post-processing produce.
"""

from __future__ import annotations

import asyncio
import re

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient, client_capabilities

from lsp_llm.context.postprocess import clean_suggestion
from lsp_llm.context.prompts import EditorContext, completion_prompt
from lsp_llm.engine.decoding import Decoder
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import GenerationRequest
from tests.lsp_helpers import CONFIG, inline_params, open_doc, raw_request

pytestmark = pytest.mark.asyncio(loop_scope="module")

SOURCE = """import math


def area(radius):
    pass


def circumference(r):
    return 2 * math.pi * r


def scale(values, factor):
    result = []
    for v in values:
        result.append(v * factor)
    return result
"""
URI = "file:///work/demo/geometry.py"


def settings_for(tiny, **extra):
    return {
        "model": str(tiny.target),
        "draftModel": str(tiny.draft),
        "completion": {"maxNewTokens": 24, "contextTokens": 512},
        "chat": {"maxNewTokens": 24, "temperature": 0},
        **extra,
    }


@pytest_lsp.fixture(config=CONFIG, params=["visual-studio-code", "neovim"], scope="module")
async def client(request, lsp_client: LanguageClient, tiny):
    params = types.InitializeParams(
        capabilities=client_capabilities(request.param),
        initialization_options=settings_for(
            tiny, completion={"maxNewTokens": 24, "contextTokens": 512, "bogusKey": 1}
        ),
    )
    result = await lsp_client.initialize_session(params)
    lsp_client.init_result = result
    lsp_client.client_name = request.param
    await lsp_client.rec.wait_status("ready")
    open_doc(lsp_client, URI, SOURCE)
    yield
    await lsp_client.shutdown_session()


def expected_suggestion(loaded, text: str, offset: int, max_new: int = 24):
    info = TokenizerInfo(loaded.tokenizer)
    ctx = EditorContext(text, offset, "python", "/work/demo/geometry.py")
    prompt = completion_prompt(info, ctx, context_tokens=512)
    done = Decoder(loaded.model, loaded.tokenizer, None).run(
        GenerationRequest(prompt.token_ids, max_new, prompt.stop), asyncio.Event(), lambda e: None
    )
    return clean_suggestion(
        done.text, ctx.before, ctx.after, prompt.multiline, truncated=done.reason == "length"
    )


def offset_of(line: int, character: int, text: str = SOURCE) -> int:
    return sum(len(x) + 1 for x in text.split("\n")[:line]) + character


async def test_capabilities_and_invalid_setting_reported(client: LanguageClient):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert caps.code_action_provider.resolve_provider is True
    assert set(caps.execute_command_provider.commands) >= {
        "lspLlm.applyAction",
        "lspLlm.rewriteSelection",
    }
    assert any("completion.bogusKey" in m.message for m in client.messages)
    ready = next(s for s in client.rec.statuses if s["state"] == "ready")
    assert ready["device"] == "cpu" and ready["draftModel"]
    assert client.rec.statuses[0]["state"] == "loading"


async def test_load_progress_for_clients_that_support_it(client: LanguageClient):
    if client.client_name != "visual-studio-code":
        pytest.skip("the recorded Neovim capabilities do not include work done progress")
    reports = [r for rs in client.progress_reports.values() for r in rs]
    kinds = [type(r).__name__ for r in reports]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    percentages = [r.percentage for r in reports if getattr(r, "percentage", None) is not None]
    assert percentages == sorted(percentages) and percentages[-1] == 100


async def test_inline_completion_matches_engine(client: LanguageClient, loaded):
    line, col = 8, len("    return 2 * ")
    result = await client.text_document_inline_completion_async(inline_params(URI, line, col))
    expected = expected_suggestion(loaded, SOURCE, offset_of(line, col))
    assert expected is not None, "fixture model should suggest something here"
    assert len(result.items) == 1
    item = result.items[0]
    assert item.insert_text == expected.text
    assert item.range.start == types.Position(line, col)
    assert item.range.end == types.Position(line, col + expected.replace_chars)


async def test_typing_ahead_is_answered_without_the_model(client: LanguageClient, loaded):
    """The user types the first character of the suggestion: the rest comes back with no
    generation (no `busy` status), faster than asking the model."""
    import time

    uri = "file:///work/demo/typeahead.py"
    open_doc(client, uri, SOURCE)
    line, col = 8, len("    return 2 * ")
    t0 = time.perf_counter()
    first = await client.text_document_inline_completion_async(inline_params(uri, line, col))
    fresh_ms = (time.perf_counter() - t0) * 1000
    text = first.items[0].insert_text
    assert len(text) > 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            [
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(line, col), types.Position(line, col)),
                    text=text[0],
                )
            ],
        )
    )
    seen = len(client.rec.statuses)
    t0 = time.perf_counter()
    ahead = await client.text_document_inline_completion_async(inline_params(uri, line, col + 1))
    typed_ms = (time.perf_counter() - t0) * 1000
    assert [item.insert_text for item in ahead.items] == [text[1:]]
    assert ahead.items[0].range.start == types.Position(line, col + 1)
    assert not [s for s in client.rec.statuses[seen:] if s["state"] == "busy"]  # no model
    print(f"typing ahead: {typed_ms:.1f} ms, a fresh suggestion {fresh_ms:.1f} ms")


async def test_completion_item_carries_same_suggestion(client: LanguageClient, loaded):
    line, col = 8, len("    return 2 * ma")
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(URI), position=types.Position(line, col)
        )
    )
    expected = expected_suggestion(loaded, SOURCE, offset_of(line, col))
    assert result.is_incomplete is True
    item = result.items[0]
    assert item.text_edit.new_text == "ma" + expected.text
    assert item.text_edit.range.start == types.Position(line, len("    return 2 * "))
    assert item.label.startswith(("ma" + expected.text).split("\n")[0].strip()[:10])


async def test_chat_streams_deltas_that_add_up(client: LanguageClient):
    token = f"chat-{client.client_name}"
    result = await client.protocol.send_request_async(
        "lspLlm/chat",
        {
            "messages": [{"role": "user", "content": "What does scale do?"}],
            "context": {
                "uri": URI,
                "range": {
                    "start": {"line": 11, "character": 0},
                    "end": {"line": 16, "character": 0},
                },
            },
            "partialResultToken": token,
        },
    )
    deltas = client.rec.partials[token]
    assert len(deltas) >= 2
    assert "".join(deltas) == result.content
    assert result.finishReason in ("stop", "length")
    assert result.usage.completionTokens > 0 and result.usage.promptTokens > 20
    assert result.timings.firstTokenMs is not None and result.timings.totalMs > 0


async def test_chat_rejects_bad_messages(client: LanguageClient):
    for bad in (
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user", "content": 3}]},
        {"nothing": 1},
    ):
        with pytest.raises(JsonRpcInvalidParams):
            await client.protocol.send_request_async("lspLlm/chat", bad)


async def test_invalid_live_setting_keeps_old_value(client: LanguageClient):
    before = len(client.messages)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"lspLlm": {"chat": {"maxNewTokens": -5}}})
    )
    result = await client.protocol.send_request_async(
        "lspLlm/chat", {"messages": [{"role": "user", "content": "hello"}]}
    )
    assert any("chat.maxNewTokens" in m.message for m in client.messages[before:])
    assert 0 < result.usage.completionTokens <= 24


async def test_bad_positions_and_documents_are_clear_errors(client: LanguageClient):
    cases = [inline_params("file:///nowhere.py", 0, 0), inline_params(URI, 500, 0)]
    for params in cases:
        with pytest.raises(JsonRpcInvalidParams):
            await client.text_document_inline_completion_async(params)
    emoji_uri = "file:///work/demo/emoji.py"
    open_doc(client, emoji_uri, "s = '🐍'\n")
    with pytest.raises(JsonRpcInvalidParams, match="inside a character"):
        await client.text_document_inline_completion_async(inline_params(emoji_uri, 0, 6))
    # Past the end of a line means the end of the line (LSP), not an error.
    ok = await client.text_document_inline_completion_async(inline_params(emoji_uri, 0, 99))
    encoding = client.init_result.capabilities.position_encoding or "utf-16"
    end = {"utf-8": 10, "utf-16": 8, "utf-32": 7}[str(getattr(encoding, "value", encoding))]
    assert all(item.range.start == types.Position(0, end) for item in ok.items)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///home/u/my%20project/geometry.py",  # a space, as VS Code sends it
        "file:///c%3A/Users/u/geometry.py",  # a Windows drive letter
        "file:///home/u/g%C3%A9om%C3%A9trie.py",  # an accented name
    ],
)
async def test_percent_encoded_uris_are_found(client: LanguageClient, uri: str):
    open_doc(client, uri, SOURCE)
    line = SOURCE.split("\n").index("def area(radius):") + 1
    result = await client.text_document_inline_completion_async(inline_params(uri, line, 4))
    assert result.items is not None  # found: a list (not an unknown-document error)
    offered = await client.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(uri),
            types.Range(types.Position(line, 4), types.Position(line, 4)),
            types.CodeActionContext(diagnostics=[]),
        )
    )
    assert offered and all(a.data["uri"] == uri for a in offered if a.data)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )
    with pytest.raises(JsonRpcInvalidParams, match="unknown document"):
        await client.text_document_inline_completion_async(inline_params(uri, line, 4))


async def test_malformed_params_get_invalid_params(client: LanguageClient):
    with pytest.raises(JsonRpcInvalidParams):
        await raw_request(
            client,
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            {"textDocument": {"uri": URI}, "position": "here"},
        )


@pytest.mark.parametrize(
    ("method", "params", "field"),
    [
        (
            "workspace/executeCommand",
            {
                "command": "lspLlm.applyAction",
                "arguments": [{"action": "docstring", "uri": URI, "start": {"x": 1}}],
            },
            "code action data.start",
        ),
        (
            "workspace/executeCommand",
            {"command": "lspLlm.applyAction", "arguments": [{"action": "fillBody", "start": 3}]},
            "code action data.uri is missing",
        ),
        (
            "codeAction/resolve",
            {"title": "x", "data": {"action": "docstring", "uri": URI, "start": True}},
            "code action data.start",
        ),
        (
            "lspLlm/chat",
            {
                "messages": [{"role": "user", "content": "hi"}],
                "context": {
                    "uri": URI,
                    "range": {
                        "start": {"line": float("inf"), "character": 0},
                        "end": {"line": 0, "character": 0},
                    },
                },
            },
            "context.range.start.line",
        ),
        (
            "workspace/executeCommand",
            {
                "command": "lspLlm.rewriteSelection",
                "arguments": [URI, {"start": {"line": 0}}, "shorter"],
            },
            "character is missing",
        ),
    ],
)
async def test_malformed_custom_params_are_invalid_params_naming_the_field(
    client: LanguageClient, method, params, field
):
    with pytest.raises(JsonRpcInvalidParams, match=re.escape(field)):
        await raw_request(client, method, params)


async def test_huge_and_binary_documents(client: LanguageClient):
    big_uri = "file:///work/demo/big.py"
    big = "".join(f"value_{i} = {i} * 2\n" for i in range(260_000))  # ~5 MB
    assert len(big) > 5_000_000
    open_doc(client, big_uri, big + "total = ")
    result = await asyncio.wait_for(
        client.text_document_inline_completion_async(
            inline_params(big_uri, 260_000, len("total = "))
        ),
        120,
    )
    assert all(item.range.start == types.Position(260_000, 8) for item in result.items)
    bin_uri = "file:///work/demo/blob.bin"
    open_doc(client, bin_uri, "\x00\x01\x02binary\x00" * 100, "plaintext")
    result = await client.text_document_inline_completion_async(inline_params(bin_uri, 0, 5))
    assert len(result.items) == 0


async def test_lone_surrogates_are_read_as_replacement_characters(client: LanguageClient):
    """JSON can carry a lone surrogate, which no tokenizer takes: it is read as U+FFFD, so
    a completion and a chat are answered, not failed."""
    uri = "file:///work/demo/surrogate.py"
    open_doc(client, uri, "s = '\ud800'\nvalue = ")
    result = await client.text_document_inline_completion_async(inline_params(uri, 1, 8))
    assert result.items is not None
    reply = await client.protocol.send_request_async(
        "lspLlm/chat", {"messages": [{"role": "user", "content": "what is \udc00?"}]}
    )
    assert reply.finishReason in ("stop", "length")


async def test_code_actions_offer_and_resolve(client: LanguageClient):
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(URI),
        range=types.Range(types.Position(4, 4), types.Position(4, 4)),
        context=types.CodeActionContext(diagnostics=[]),
    )
    actions = await client.text_document_code_action_async(params)
    titles = [a.title for a in actions]
    assert "lsp-llm: Add docstring" in titles and "lsp-llm: Fill in function body" in titles
    docstring = next(a for a in actions if a.title == "lsp-llm: Add docstring")
    resolved = await client.code_action_resolve_async(docstring)
    edits = _edits(resolved.edit)
    assert len(edits) == 1
    assert edits[0].range.start == types.Position(4, 0) == edits[0].range.end
    assert edits[0].new_text.startswith('    """') and edits[0].new_text.endswith('"""\n')


async def test_each_code_action_has_a_kind_of_its_own(client: LanguageClient):
    """A client picks an action by kind (the VS Code extension's "Add Docstring" asks for
    refactor.rewrite.lspLlm.docstring), never by its title; the parent kind gets them all."""

    def ask(only: list[str]) -> types.CodeActionParams:
        return types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(URI),
            range=types.Range(types.Position(4, 4), types.Position(4, 4)),
            context=types.CodeActionContext(diagnostics=[], only=only),
        )

    every = await client.text_document_code_action_async(ask(["refactor.rewrite"]))
    kinds = {a.kind for a in every}
    assert kinds == {"refactor.rewrite.lspLlm.docstring", "refactor.rewrite.lspLlm.fillBody"}
    only = await client.text_document_code_action_async(ask(["refactor.rewrite.lspLlm.docstring"]))
    assert [a.title for a in only] == ["lsp-llm: Add docstring"]
    assert not await client.text_document_code_action_async(ask(["quickfix"]))


async def test_commands_apply_edits(client: LanguageClient):
    before = len(client.rec.applied)
    data = {
        "uri": URI,
        "version": 1,
        "start": offset_of(4, 4),
        "end": offset_of(4, 4),
        "action": "fillBody",
    }
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="lspLlm.applyAction", arguments=[data])
    )
    assert result["applied"] is True
    fill = _edits(client.rec.applied[before])[0]
    assert fill.range.start == types.Position(4, 4) and fill.range.end == types.Position(4, 8)
    rng = {"start": {"line": 12, "character": 0}, "end": {"line": 16, "character": 0}}
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="lspLlm.rewriteSelection", arguments=[URI, rng, "use a list comprehension"]
        )
    )
    assert result["applied"] is True
    rewrite = _edits(client.rec.applied[before + 1])[0]
    assert rewrite.range.start.line == 12 and rewrite.range.end.line == 16
    with pytest.raises(JsonRpcInvalidParams, match="instruction"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="lspLlm.rewriteSelection", arguments=[URI, rng])
        )


def _edits(edit: types.WorkspaceEdit) -> list[types.TextEdit]:
    if edit.document_changes:
        return [e for change in edit.document_changes for e in change.edits]
    return [e for edits in edit.changes.values() for e in edits]


async def test_rewrite_action_carries_uri_and_range(client: LanguageClient):
    # Read on the raw wire: pygls's client converter mis-reads a CodeAction that carries
    # a command as a bare Command (editors tell them apart by the type of `command`).
    selection = {"start": {"line": 12, "character": 0}, "end": {"line": 16, "character": 0}}
    actions = await raw_request(
        client,
        types.TEXT_DOCUMENT_CODE_ACTION,
        {"textDocument": {"uri": URI}, "range": selection, "context": {"diagnostics": []}},
    )
    rewrite = next(a for a in actions if a["title"] == "lsp-llm: Rewrite selection…")
    assert rewrite["kind"] == "refactor.rewrite.lspLlm.rewrite"
    assert rewrite["command"]["command"] == "lspLlm.rewriteSelection"
    uri, rng = rewrite["command"]["arguments"]
    assert uri == URI and rng["start"]["line"] == 12 and rng["end"]["line"] == 16


async def test_another_open_file_reaches_the_prompt(client: LanguageClient, loaded):
    """With another file open whose code the cursor's window shares names with, the
    suggestion is the model's answer to the prompt that carries it (computed here the way
    the server builds it), which differs from the answer without it (no suggestion is an
    answer too)."""
    from lsp_llm.context.extra import Chunk, fits

    shapes = (
        "def frobnicate_widget(width, height):\n    return width * height\n\n\n"
        "class WidgetBox:\n    def add_widget(self, width, height):\n        pass\n"
    )
    main = "def report(width, height):\n    box = WidgetBox()\n    area = "
    base = "file:///work/demo/pkg/"
    open_doc(client, base + "shapes.py", shapes)
    open_doc(client, base + "main.py", main)
    result = await client.text_document_inline_completion_async(
        inline_params(base + "main.py", 2, len("    area = "))
    )
    info = TokenizerInfo(loaded.tokenizer)
    budget = int(info.budget(512, 24) * 0.3)
    chunks = tuple(
        fits([Chunk(base + "shapes.py", "shapes.py", 0, shapes)], budget, info.tokenizer)
    )
    ctx = EditorContext(main, len(main), "python", "/work/demo/pkg/main.py", chunks, "main.py")
    prompt = completion_prompt(info, ctx, context_tokens=512)
    done = Decoder(loaded.model, loaded.tokenizer, None).run(
        GenerationRequest(prompt.token_ids, 24, prompt.stop), asyncio.Event(), lambda e: None
    )
    with_extra = clean_suggestion(
        done.text, ctx.before, ctx.after, prompt.multiline, truncated=done.reason == "length"
    )
    without = expected_suggestion(loaded, main, len(main))
    # (the random model may loop within the line either way; its loop is then dropped)
    with_text, without_text = (s.text if s else None for s in (with_extra, without))
    assert with_text != without_text
    items = result.items if result is not None else []
    assert [item.insert_text for item in items] == ([with_text] if with_text else [])


async def test_code_actions_for_a_javascript_function_not_written_yet(client: LanguageClient):
    uri = "file:///work/demo/box.js"
    text = "class Box {\n  area(width, height) {\n    \n  }\n}\n"  # as editors auto-close
    open_doc(client, uri, text, "javascript")
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri),
        range=types.Range(types.Position(2, 4), types.Position(2, 4)),
        context=types.CodeActionContext(diagnostics=[]),
    )
    titles = [a.title for a in await client.text_document_code_action_async(params)]
    assert "lsp-llm: Add docstring" in titles and "lsp-llm: Fill in function body" in titles


@pytest.mark.parametrize(
    ("uri", "language_id"),
    [
        ("file:///work/demo/nofiletype.py", ""),  # Neovim without filetype detection
        ("file:///work/demo/mode.py", "python-ts"),  # eglot's id for python-ts-mode
        ("file:///work/demo/mode.mjs", "js2"),  # eglot's id for js2-mode
    ],
)
async def test_the_language_comes_from_the_extension_when_the_id_is_empty_or_unknown(
    client: LanguageClient, uri: str, language_id: str
):
    if uri.endswith(".py"):
        text, line = "def area(width, height):\n    \n", 1
    else:
        text, line = "function area(width, height) {\n  \n}\n", 1
    open_doc(client, uri, text, language_id)
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri),
        range=types.Range(types.Position(line, 2), types.Position(line, 2)),
        context=types.CodeActionContext(diagnostics=[]),
    )
    titles = [a.title for a in await client.text_document_code_action_async(params)]
    assert "lsp-llm: Add docstring" in titles


@pytest.mark.parametrize(
    ("name", "language_id", "text", "line", "marker"),
    [
        (
            "shapes.go",
            "go",
            "package shapes\n\nfunc Area(side float64) float64 {\n\t\n}\n",
            3,
            "//",
        ),
        ("shapes.rs", "rust", "fn area(side: f64) -> f64 {\n    \n}\n", 1, "///"),
        (
            "Shapes.java",
            "java",
            "class Shapes {\n    double area(double s) {\n        \n    }\n}\n",
            2,
            "/**",
        ),
        ("shapes.c", "", "double area(double side) {\n    \n}\n", 1, "/**"),  # no id: by extension
        ("shapes.cpp", "cpp", "double area(double side) {\n    \n}\n", 1, "/**"),
        ("shapes.ts", "typescript", "function area(side: number) {\n  \n}\n", 1, "/**"),
    ],
)
async def test_every_language_gets_a_completion_and_a_doc_comment(
    client: LanguageClient, name: str, language_id: str, text: str, line: int, marker: str
):
    uri = f"file:///work/demo/{name}"
    open_doc(client, uri, text, language_id)
    at = types.Position(line, len(text.split("\n")[line]))
    # a completion is served (the tiny model's text is not the point)
    await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri),
            position=at,
            context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Invoked),
        )
    )
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri),
        range=types.Range(at, at),
        context=types.CodeActionContext(diagnostics=[], only=["refactor.rewrite.lspLlm.docstring"]),
    )
    actions = await client.text_document_code_action_async(params)
    assert [a.title for a in actions] == ["lsp-llm: Add docstring"]
    resolved = await client.code_action_resolve_async(actions[0])
    edits = _edits(resolved.edit)  # the tiny model's words, in the language's comment style
    assert len(edits) == 1 and edits[0].new_text.lstrip().startswith(marker)
    assert edits[0].range.start.line == (2 if name.endswith(".go") else 1 if ".java" in name else 0)
