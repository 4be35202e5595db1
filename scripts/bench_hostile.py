"""Time an authenticated `--tcp` daemon session's inline completion, alone and right after
a stranger's 300 KB malformed messages (a notification, then an initialize without the
token), with the bundled model. Compare checkouts side by side:

    .venv/bin/python scripts/bench_hostile.py . [PORT]
    git worktree add /tmp/old REV && .venv/bin/python scripts/bench_hostile.py /tmp/old

Prints one JSON line: the median of 5 completions alone, and the one after the stranger.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

from lsp_llm.server.auth import read_token, token_path

HOSTILE = "x" * 300_000
URI = "file:///tmp/bench-hostile.py"


def frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Connection:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.file = self.sock.makefile("rb")

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(frame(message))

    def receive(self) -> dict[str, Any]:
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length"):
                length = int(line.split(b":")[1])
        message: dict[str, Any] = json.loads(self.file.read(length))
        return message

    def request(self, msg_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        while True:
            message = self.receive()
            if message.get("id") == msg_id and "method" not in message:
                return message


def main(root: str, port: int) -> None:
    env = {**os.environ, "PYTHONPATH": root, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "lsp_llm", "serve", "--tcp", str(port)]
    proc = subprocess.Popen(command, env=env, cwd=root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        user = Connection(port)
        options = {"authToken": read_token(token_path(port)), "model": "bundled"}
        user.request(1, "initialize", {"processId": None, "capabilities": {},
                                       "initializationOptions": options})  # fmt: skip
        user.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        item = {"uri": URI, "languageId": "python", "version": 1, "text": "def f(x):\n    "}
        user.send({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                   "params": {"textDocument": item}})  # fmt: skip

        def complete(msg_id: int) -> float:
            t0 = time.perf_counter()
            user.request(msg_id, "textDocument/inlineCompletion", {
                "textDocument": {"uri": URI}, "position": {"line": 1, "character": 4},
                "context": {"triggerKind": 2}})  # fmt: skip
            return (time.perf_counter() - t0) * 1000

        for i in range(3):
            complete(100 + i)  # the first waits for the model
        alone = sorted(complete(200 + i) for i in range(5))[2]
        stranger = Connection(port)
        folders = {"event": {"added": [], "removed": HOSTILE}}
        stranger.send({"jsonrpc": "2.0", "method": "workspace/didChangeWorkspaceFolders",
                       "params": folders})  # fmt: skip
        caps = {
            "textDocument": {"synchronization": HOSTILE},
            "workspace": {"workspaceFolders": HOSTILE},
        }
        stranger.send({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"processId": None, "capabilities": caps}})  # fmt: skip
        time.sleep(0.05)
        after = complete(300)
        print(json.dumps({"root": root, "alone_median_ms": round(alone, 1),
                          "after_stranger_ms": round(after, 1)}))  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 47123)
