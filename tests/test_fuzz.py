"""Hostile input in bulk: 2,000+ malformed messages (seeded, so a failure replays) sent in
batches to a live stdio server on the bundled model. After every batch: every request got
exactly one response (by id; unreadable ones one `id: null` error each), a valid inline
completion is still answered, and the thread count and memory stay bounded."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from tests.test_conformance import INIT, RawServer, frame, message

REQUESTS = [
    "textDocument/inlineCompletion",
    "textDocument/completion",
    "textDocument/codeAction",
    "codeAction/resolve",
    "workspace/executeCommand",
    "lspLlm/chat",
    "initialize",
    "no/suchMethod",
]
NOTIFICATIONS = [
    "textDocument/didOpen",
    "textDocument/didChange",
    "textDocument/didClose",
    "$/cancelRequest",
    "initialized",
    "no/suchNotification",
]
SAFE_URI = "file:///work/fuzz/safe.py"
SAFE_TEXT = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    "


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(12 if depth < 3 else 7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([0, -1, 2**31, 2**63, -(2**63), 1e308, -0.5])
    if kind == 2:
        return rng.choice(["", "x", "\ud800", "😀" * 3, "<|endoftext|>", "../../etc/passwd"])
    if kind == 3:
        return "a" * rng.choice([1000, 100_000, 1_000_000])
    if kind == 4:
        return rng.choice([True, False])
    if kind == 5:
        return f"file:///work/fuzz/{rng.randrange(5)}%20x.py"
    if kind == 6:
        return {"line": _value(rng, depth + 1), "character": _value(rng, depth + 1)}
    if kind == 7:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["textDocument", "position", "range", "uri", "text", "messages", "context",
            "contentChanges", "version", "id", "data", "command", "arguments", "jsonrpc",
            "partialResultToken", "role", "content", "start", "end"]  # fmt: skip
    return {rng.choice(keys): _value(rng, depth + 1) for _ in range(rng.randrange(1, 5))}


def _params(rng: random.Random) -> Any:
    doc = {
        "uri": _value(rng, 2) if rng.random() < 0.3 else f"file:///work/fuzz/{rng.randrange(5)}.py"
    }
    shapes = [
        lambda: _value(rng),
        lambda: {
            "textDocument": doc,
            "position": {"line": rng.randrange(-2, 50), "character": rng.randrange(-2, 200)},
        },
        lambda: {
            "textDocument": {**doc, "text": _value(rng, 2), "languageId": "python", "version": 1}
        },
        lambda: {"messages": [{"role": _value(rng, 2), "content": _value(rng, 2)}]},
        lambda: {"messages": [{"role": "user", "content": "hi"}], "context": _value(rng, 1)},
        lambda: {
            "command": rng.choice(["lspLlm.applyAction", "lspLlm.rewriteSelection", "x"]),
            "arguments": _value(rng, 1),
        },
    ]
    return rng.choice(shapes)()


def _deep(n: int) -> bytes:
    return b'{"jsonrpc": "2.0", "id": 1, "method": "x", "params": ' + b"[" * n + b"]" * n + b"}"


def batch(rng: random.Random, start: int, size: int) -> tuple[list[bytes], Counter[Any]]:
    """`size` messages and the responses they call for: one per request id, plus one
    `id: null` error per message whose id cannot be read."""
    out: list[bytes] = []
    expected: Counter[Any] = Counter()
    for i in range(start, start + size):
        roll = rng.random()
        if roll < 0.45:
            msg: dict[str, Any] = {"jsonrpc": "2.0", "id": i, "method": rng.choice(REQUESTS)}
            if rng.random() < 0.9:
                msg["params"] = _params(rng)
            out.append(message(msg))
            expected[i] += 1
        elif roll < 0.70:
            msg = {"jsonrpc": "2.0", "method": rng.choice(NOTIFICATIONS)}
            if rng.random() < 0.9:
                msg["params"] = _params(rng)
            out.append(message(msg))
        elif roll < 0.80:
            body = json.dumps({"jsonrpc": "2.0", "id": i, "method": rng.choice(REQUESTS)})
            cut = rng.randrange(1, len(body))
            garbage = rng.choice([body[:cut].encode(), b"\xff\xfe" + body.encode(), b"",
                                  b"nul\x00l", b"{}" * 3])  # fmt: skip
            out.append(frame(garbage))
            expected[None] += 1
        elif roll < 0.88:
            bad_id = rng.choice([True, 1.5, {}, [], None])
            out.append(message({"jsonrpc": "2.0", "id": bad_id, "method": rng.choice(REQUESTS)}))
            expected[None] += 1
        elif roll < 0.94:
            out.append(message([{"jsonrpc": "2.0", "id": i, "method": "shutdown"}]))
            expected[None] += 1
        else:
            out.append(frame(_deep(rng.choice([100, 3000]))))
            expected["deep"] += 1
    return out, expected


def _proc_status(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) // 1024


def test_two_thousand_hostile_messages(tmp_path):
    rng = random.Random(20261123)
    server = RawServer()
    try:
        server.send(message({"jsonrpc": "2.0", "id": "init", "method": "initialize",
                             "params": {**INIT, "initializationOptions": {
                                 "model": "bundled", "chat": {"maxNewTokens": 4},
                                 "completion": {"maxNewTokens": 8}}}}))  # fmt: skip
        server.replies_to("init")
        server.send(message({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
        server.send(message({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
            "textDocument": {"uri": SAFE_URI, "languageId": "python", "version": 1,
                             "text": SAFE_TEXT}}}))  # fmt: skip
        baseline: tuple[int, int] | None = None
        sent = 0
        for b in range(20):
            data, expected = batch(rng, 1000 + sent, 105)
            sent += len(data)
            for item in data:
                server.send(item)
            probe = f"probe-{b}"
            server.send(message({"jsonrpc": "2.0", "id": probe,
                                 "method": "textDocument/inlineCompletion", "params": {
                                     "textDocument": {"uri": SAFE_URI},
                                     "position": {"line": 5, "character": 4},
                                     "context": {"triggerKind": 1}}}))  # fmt: skip
            got: Counter[Any] = Counter()
            answered = False
            # Until the probe is answered and every request of the batch too: a completion
            # (the probe) goes before chat work, so a chat's answer may come after it.
            waiting = {k for k in expected if k not in (None, "deep")}
            while not answered or not waiting <= set(got):
                reply = server.reply(timeout=120)
                assert reply is not None, f"the server ended in batch {b}"
                if "method" in reply:
                    continue  # the server's own notifications and requests
                assert reply.get("jsonrpc") == "2.0" and ("result" in reply) != ("error" in reply)
                if reply.get("id") == probe:
                    assert isinstance(reply["result"]["items"], list)  # a valid completion
                    answered = True
                    continue
                got[reply.get("id")] += 1
            deep = expected.pop("deep", 0)
            # a deep message is answered once: by id 1 (too deep for its params) or null
            assert got[None] + got.pop(1, 0) == expected.pop(None, 0) + deep, (b, got, expected)
            got.pop(None, None)
            assert got == expected, (b, got - expected, expected - got)
            threads, rss = _proc_status(server.proc.pid)
            baseline = baseline or (threads, rss)
            assert threads <= baseline[0] + 8, (b, threads, baseline)
            assert rss <= baseline[1] + 600, (b, rss, baseline)
        assert sent >= 2000
        print(f"{sent} hostile messages; threads {baseline} -> {threads}, RSS {rss} MB")
    finally:
        server.close()
