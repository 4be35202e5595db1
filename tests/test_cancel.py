"""`$/cancelRequest` end to end: the generation behind a cancelled request stops at once,
nothing more is streamed for it, and the next request is served without waiting.

Driven by pygls's own client (`lsp_llm.client.ServerSession`): pytest-lsp's request
wrapper cancels its local future when the server answers -32800, which then trips the
harness; a plain client sees the protocol exactly as an editor does.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from lsp_llm.client import ServerSession

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("method", ["lspLlm/chat", "textDocument/inlineCompletion"])
async def test_cancel_stops_generation_and_next_request_is_served(tiny, tmp_path, method):
    states: list[str] = []
    session = ServerSession(
        {
            # The endless model writes until the token limit (no end token, no stop rule),
            # but it is tiny: 4,096 tokens take about half a second on this machine. So the
            # cancel goes out the moment the server reports the generation running (busy),
            # never after a fixed sleep.
            "model": str(tiny.endless),
            "draftModel": str(tiny.draft),
            "chat": {"maxNewTokens": 4096, "temperature": 0},
            "completion": {"maxNewTokens": 4096, "multiline": "always"},
        },
        on_status=lambda status: states.append(status.get("state", "")),
    )
    await session.start()
    try:
        deltas: list[str] = []
        if method == "lspLlm/chat":
            pending = asyncio.ensure_future(
                session.chat([{"role": "user", "content": "Tell me everything."}], deltas.append)
            )
            while len(deltas) < 3:
                await asyncio.sleep(0.005)
        else:
            uri = session.open(tmp_path / "a.py", "def f(x):\n")
            pending = asyncio.ensure_future(session.inline(uri, 1, 0))
            while "busy" not in states:
                await asyncio.sleep(0.001)
            assert not pending.done()
        request_id = list(session.client.protocol._request_futures)[-1]
        t0 = time.perf_counter()
        session.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=request_id))
        with pytest.raises(JsonRpcRequestCancelled):
            await asyncio.wait_for(pending, 30)
        cancel_ms = (time.perf_counter() - t0) * 1000
        seen = len(deltas)
        t1 = time.perf_counter()
        session.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"lspLlm": {"chat": {"maxNewTokens": 8}}})
        )
        quick = await asyncio.wait_for(
            session.chat([{"role": "user", "content": "hi"}], lambda _: None), 30
        )
        next_ms = (time.perf_counter() - t1) * 1000
        assert len(deltas) <= seen + 1  # at most one piece that was already on the wire
        assert quick.usage.completionTokens <= 8
        print(f"{method}: cancel answered in {cancel_ms:.1f} ms, next request in {next_ms:.1f} ms")
    finally:
        await session.close()
