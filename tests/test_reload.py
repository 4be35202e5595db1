"""Live settings: a model change reloads the model with progress; other changes apply
without a reload. Ends with shutdown + exit and checks the exit code."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.lsp_helpers import CONFIG

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def reloading(lsp_client: LanguageClient, tiny):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={"model": str(tiny.target)},
        )
    )
    yield


async def test_model_change_reloads_and_other_changes_do_not(reloading: LanguageClient, tiny):
    client = reloading
    first = await client.rec.wait_status("ready")
    assert first["model"] == str(tiny.target)
    mark = len(client.rec.statuses)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"lspLlm": {"speculation": {"mode": "off"}, "chat": {"maxNewTokens": 4}}}
        )
    )
    reply = await client.protocol.send_request_async(
        "lspLlm/chat", {"messages": [{"role": "user", "content": "hi"}]}
    )
    assert reply.usage.completionTokens <= 4
    assert all(s["state"] in ("busy", "ready") for s in client.rec.statuses[mark:])
    mark = len(client.rec.statuses)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"lspLlm": {"model": str(tiny.twin)}})
    )
    await client.rec.wait_status("loading", after=mark)
    second = await client.rec.wait_status("ready", after=mark)
    assert second["model"] == str(tiny.twin)
    assert len(client.progress_reports) == 2  # a second work-done progress for the reload
    await client.shutdown_session()
    assert client._server.returncode == 0  # shutdown then exit: exit code 0
