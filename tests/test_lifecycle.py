"""Server lifecycle over real processes: before initialize, failed loads, reloads on model
change, a client that vanishes mid-stream, clean shutdown/exit, and `--tcp`."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities

from tests.lsp_helpers import CONFIG, SERVER, server_env, tcp_daemon

pytestmark = pytest.mark.asyncio(loop_scope="module")


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def initialize(settings: dict, msg_id: int = 1) -> dict:
    """An `initialize` request from a client with no capabilities."""
    params = {"processId": None, "rootUri": None, "capabilities": {}}
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "initialize",
        "params": {**params, "initializationOptions": settings},
    }


async def read_message(reader: asyncio.StreamReader) -> dict:
    length = 0
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("server closed its output")
        if line in (b"\r\n", b"\n"):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(await reader.readexactly(length))


async def read_until(reader: asyncio.StreamReader, predicate, timeout: float = 120) -> dict:
    async def loop() -> dict:
        while True:
            message = await read_message(reader)
            if predicate(message):
                return message

    return await asyncio.wait_for(loop(), timeout)


async def start_raw(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *SERVER,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=server_env(),
    )


async def test_request_before_initialize_is_refused():
    proc = await start_raw()
    proc.stdin.write(
        frame(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "lspLlm/chat",
                "params": {"messages": [{"role": "user", "content": "hi"}]},
            }
        )
    )
    await proc.stdin.drain()
    reply = await read_until(proc.stdout, lambda m: m.get("id") == 1, 60)
    assert reply["error"]["code"] == -32002  # ServerNotInitialized
    proc.stdin.close()
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_client_vanishing_mid_stream_ends_server_cleanly(tiny):
    proc = await start_raw()
    settings = {"model": str(tiny.endless), "chat": {"maxNewTokens": 100000}}
    proc.stdin.write(frame(initialize(settings)))
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    proc.stdin.write(
        frame(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "lspLlm/chat",
                "params": {
                    "messages": [{"role": "user", "content": "go on forever"}],
                    "partialResultToken": "t",
                },
            }
        )
    )
    await proc.stdin.drain()
    await read_until(
        proc.stdout, lambda m: m.get("method") == "$/progress" and m["params"]["token"] == "t"
    )
    proc.stdin.close()  # the editor is gone, mid-stream
    proc.stdout.feed_eof()
    assert await asyncio.wait_for(proc.wait(), 30) == 0


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def broken(lsp_client: LanguageClient):
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={"model": "nobody/not-a-model"},
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_failed_load_is_reported_and_requests_get_clear_error(broken: LanguageClient):
    status = await broken.rec.wait_status("error")
    assert "nobody/not-a-model" in status["message"] and "HF_HUB_OFFLINE" in status["message"]
    assert any(m.type == types.MessageType.Error for m in broken.messages)
    with pytest.raises(Exception, match="not available"):
        await broken.protocol.send_request_async(
            "lspLlm/chat", {"messages": [{"role": "user", "content": "hi"}]}
        )


def _read_reply(sock: socket.socket) -> dict | None:
    """The next response from `sock` (the server's own notifications skipped), or None
    when the daemon closed the connection."""
    while (message := _read_message(sock)) is not None and "method" in message:
        pass
    return message


def _read_message(sock: socket.socket) -> dict | None:
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)
        if not byte:
            return None
        head += byte
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return json.loads(body)


async def test_tcp_daemon_on_loopback_needs_its_token(tiny):
    """Without the token the daemon answers `initialize` with an error and closes the
    connection, and nothing sent before has any effect; with it, a session starts."""
    from lsp_llm.server.auth import read_token, token_path

    with tcp_daemon("--model-dir", str(tiny.target.parent)) as (port, _):
        path = token_path(port)
        token = read_token(path)
        assert token and len(token) >= 32
        assert path.stat().st_mode & 0o777 == 0o600  # only the user can read it
        for options in ({"model": str(tiny.target)}, {"authToken": token[:-1] + "x"}):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
                sock.sendall(frame(initialize(options)))
                reply = _read_reply(sock)
                assert reply is not None and reply["error"]["code"] == -32600
                assert "authToken" in reply["error"]["message"] and token not in str(reply)
                assert _read_reply(sock) is None  # closed
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(frame(initialize({"model": str(tiny.target), "authToken": token})))
            reply = _read_reply(sock)
            assert reply is not None
            assert "inlineCompletionProvider" in reply["result"]["capabilities"]
            sock.sendall(frame(initialize({"authToken": token}, 2)))
            again = _read_reply(sock)  # a second initialize is refused, the session kept
            assert again is not None and again["error"]["code"] == -32600
    assert read_token(path) is None  # the daemon ended: its token file is gone
