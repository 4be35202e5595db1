"""A model change that cannot be loaded keeps the previous model serving: refused before
anything is released when the value names nothing loadable (a missing file, a 10 MB string,
a catalogue model not installed), or served again when the new model fails while loading;
each time the status and one message say why, echoing no more than an excerpt."""

from __future__ import annotations

import json

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp_helpers import CONFIG, inline_params, open_doc, start_on_tiny

pytestmark = pytest.mark.asyncio(loop_scope="module")
URI = "file:///tmp/lsp-llm-model-change.py"


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, tiny):
    await start_on_tiny(lsp_client, tiny, completion={"maxNewTokens": 4})
    open_doc(lsp_client, URI, "def f(x):\n    return x\n")
    yield
    await lsp_client.shutdown_session()


def change(client: LanguageClient, settings: dict) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"lspLlm": settings})
    )


async def still_completes(client: LanguageClient) -> None:
    result = await client.text_document_inline_completion_async(inline_params(URI, 1, 11))
    assert isinstance(result, types.InlineCompletionList)


@pytest.mark.parametrize(
    "model", ["/nowhere/model.gguf", "qwen2.5-coder-1.5b-not-a-model", "x" * 4000]
)
async def test_a_model_that_names_nothing_is_refused_and_the_old_one_serves(
    client: LanguageClient, tiny, model
):
    mark, told = len(client.rec.statuses), len(client.messages)
    change(client, {"model": model})
    status = await client.rec.wait_status("ready", after=mark)
    assert status["model"] == str(tiny.target)
    assert "still serving" in status["message"] and len(status["message"]) < 600
    assert not any(s["state"] in ("loading", "error") for s in client.rec.statuses[mark:])
    await still_completes(client)
    new = client.messages[told:]
    assert len(new) == 1 and new[0].type == types.MessageType.Warning


async def test_a_10_mb_model_string_or_key_is_refused_with_an_excerpt(client, tiny):
    told = len(client.messages)
    change(client, {"model": "m" * 10_000_000, "k" * 10_000_000: 1})
    await still_completes(client)
    new = client.messages[told:]
    assert new and all(len(m.message) < 1000 for m in new)
    assert any("at most 4096 characters" in m.message for m in new)


async def test_a_model_that_fails_while_loading_gives_way_to_the_previous_one(
    client: LanguageClient, tiny, tmp_path
):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": -1}))
    mark = len(client.rec.statuses)
    change(client, {"model": str(broken)})
    await client.rec.wait_status("loading", after=mark)
    status = await client.rec.wait_status("ready", after=mark)
    assert status["model"] == str(tiny.target)
    assert "serving the previous model" in status["message"]
    await still_completes(client)
