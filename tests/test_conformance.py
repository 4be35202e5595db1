"""JSON-RPC conformance over stdio, byte for byte (no client library in between): exactly
one response per request whatever it holds, the right error codes, and a broken frame that
ends the connection with a log line instead of a session that silently stops answering."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from typing import Any

import pytest

from tests.lsp_helpers import SERVER, server_env

INIT = {"processId": None, "rootUri": None, "capabilities": {}}


def frame(body: bytes, header: str = "Content-Length") -> bytes:
    return f"{header}: {len(body)}\r\n\r\n".encode() + body


def message(obj: Any) -> bytes:
    return frame(json.dumps(obj).encode())


class RawServer:
    """`lsp-llm serve` over stdio, fed raw bytes; its responses are collected as they come."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            SERVER,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=server_env(),
        )
        self.replies: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr: list[bytes] = []
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                byte = out.read(1)
                if not byte:
                    self.replies.put(None)
                    return
                head += byte
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            self.replies.put(json.loads(out.read(length)))

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def reply(self, timeout: float = 30) -> dict | None:
        return self.replies.get(timeout=timeout)

    def replies_to(self, msg_id: Any) -> dict:
        """The next response, which must be for `msg_id` (nothing else in between)."""
        got = self.reply()
        assert got is not None and got.get("id") == msg_id, got
        return got

    def alive(self, n: int) -> None:
        """A valid request is answered (an unknown document: InvalidParams, no model)."""
        params = {
            "textDocument": {"uri": "file:///nowhere.py"},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
            "context": {"diagnostics": []},
        }
        self.send(
            message(
                {
                    "jsonrpc": "2.0",
                    "id": f"alive-{n}",
                    "method": "textDocument/codeAction",
                    "params": params,
                }
            )
        )
        assert self.replies_to(f"alive-{n}")["error"]["code"] == -32602

    def close(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(30)


@pytest.fixture
def server():
    s = RawServer()
    yield s
    s.close()


def error_code(reply: dict) -> int:
    return int(reply["error"]["code"])


def test_before_initialize_requests_get_server_not_initialized(server):
    server.send(message({"jsonrpc": "2.0", "id": 1, "method": "textDocument/hover", "params": {}}))
    assert error_code(server.replies_to(1)) == -32002


def test_every_malformed_message_gets_its_error_and_the_session_goes_on(server):
    server.send(message({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}))
    assert "capabilities" in server.replies_to(0)["result"]
    cases: list[tuple[bytes, Any, int]] = [
        (frame(b"{not json"), None, -32700),
        (frame(b'{"jsonrpc": "2.0", "id": 3, "method": "x\xff"}'), None, -32700),
        (frame(b"[" * 5000 + b"]" * 5000), None, -32600),
        (message([{"jsonrpc": "2.0", "id": 4, "method": "shutdown"}]), None, -32600),
        (message({"jsonrpc": "2.0", "id": None, "method": "shutdown"}), None, -32600),
        (message({"id": 5, "method": "shutdown"}), 5, -32600),
        (message({"jsonrpc": "2.0", "id": 6, "method": "no/suchMethod"}), 6, -32601),
        (message({"jsonrpc": "2.0", "id": 7, "method": "no/suchMethod", "params": {}}), 7, -32601),
        (
            message({"jsonrpc": "2.0", "id": 8, "method": "initialize", "params": INIT}),
            8,
            -32600,
        ),  # a second initialize would drop every document and setting
        (  # a notification method sent with an id
            message({"jsonrpc": "2.0", "id": 10, "method": "initialized", "params": {}}),
            10,
            -32600,
        ),
    ]
    for n, (data, msg_id, code) in enumerate(cases):
        server.send(data)
        got = server.replies_to(msg_id)
        assert error_code(got) == code, (n, got)
        assert "traceback" not in json.dumps(got).lower()
        server.alive(n)
    # A client's error response with id null is not answered (the next reply is the probe).
    server.send(message({"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "x"}}))
    server.alive(98)
    # A params object holding a "jsonrpc" key is data, not a second message.
    forged = {"jsonrpc": "2.0", "id": "FORGED-1", "method": "shutdown"}
    server.send(
        message(
            {
                "jsonrpc": "2.0",
                "id": 9,
                "method": "lspLlm/chat",
                "params": {"messages": [], "x": forged},
            }
        )
    )
    assert error_code(server.replies_to(9)) == -32602
    server.alive(99)


def test_a_lowercase_header_is_read(server):
    body = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT})
    server.send(frame(body.encode(), header="content-length"))
    assert "capabilities" in server.replies_to(0)["result"]


BODY = b'{"jsonrpc":"2.0","method":"initialized","params":{}}'


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: -1\r\n\r\n{}",
        b"Content-Length: x\r\n\r\n",
        b"Content-Length: abc\r\n\r\n{}",
        b"Content-Length: +12\r\n\r\n{}",
        b"Content-Length: 1.5\r\n\r\n{}",
        b"Content-Length: 100000000000000000000\r\n\r\n{}",
        b"Content-Length: 268435457\r\n\r\n{}",  # over the limit
        b"\r\n" + BODY,  # no header at all
        b"Content-Length: 0\r\n\r\n" + BODY + b"\r\n",  # length 0 with a body
        b"Content-Length: " + str(len(BODY)).encode() + b"\r\n" + BODY + b"\r\n",  # no blank line
        b"Content-Length: 4\r\n\r\n" + BODY + b"\r\n",  # too short: the rest is no header
    ],
)
def test_a_broken_frame_ends_the_process_with_a_log_line_and_status_2(server, header):
    server.send(message({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}))
    server.replies_to(0)
    server.send(header)
    assert server.proc.wait(30) == 2  # not 0: a supervising editor must not read "all is well"
    assert b"bad LSP framing" in b"".join(server.stderr)


def test_after_shutdown_requests_are_invalid_and_exit_codes_follow_the_spec(server):
    server.send(message({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}))
    server.replies_to(0)
    server.send(message({"jsonrpc": "2.0", "id": 1, "method": "shutdown"}))
    assert server.replies_to(1).get("error") is None
    server.send(message({"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": {}}))
    assert error_code(server.replies_to(2)) == -32600
    server.send(message({"jsonrpc": "2.0", "method": "exit"}))
    assert server.proc.wait(30) == 0
    unclean = RawServer()
    unclean.send(message({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}))
    unclean.replies_to(0)
    unclean.send(message({"jsonrpc": "2.0", "method": "exit"}))  # no shutdown first
    assert unclean.proc.wait(30) == 1
