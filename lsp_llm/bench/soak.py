"""`lsp-llm bench-soak`: reliability over a long editing session, and fairness in a daemon.

**Soak.** One `lsp-llm serve` over stdio, a 2,000-line file of held-out stdlib code, and a
simulated developer for `--minutes`: at a random line they delete the end and type it
again, a key every ~150 ms, each keystroke a `didChange` and an inline completion that
cancels the previous one still pending (as VS Code does); every few rounds a code action
(offered, then resolved: the model writes a docstring, sometimes cancelled) and a chat
about the function under the cursor (running while they type; most are cancelled
mid-stream). Every request is accounted for: answered, cancelled, failed (by code), or
left without a response. The server's resident memory and thread count are sampled every
second.

**Fairness.** A `--tcp` daemon with two sessions on one model: one asks inline completions
while the other is idle, then while the other streams long chats. Completions go before
chat work (`engine/worker.py`), so the second figure should stay near the first.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled

from lsp_llm.client import ServerSession
from lsp_llm.server.chat import plain

ANSWER_WAIT_S = 300.0
"""How long a request may go unanswered before the soak calls it lost."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    ordered = sorted(ms)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p90_ms": at(0.9),
        "p99_ms": at(0.99),
        "max_ms": ordered[-1],
    }


def long_file(lines: int = 2000) -> str:
    """Held-out stdlib modules, whole, concatenated up to `lines` lines (code the training
    never saw, and valid Python to the last line)."""
    from lsp_llm.train.data import load_sources

    out: list[str] = []
    for source in load_sources(held_out=True):
        out.extend(source.text.splitlines())
        if len(out) >= lines:
            break
    return "\n".join(out[:lines]) + "\n"


@dataclass
class Ledger:
    """Every request sent, and what became of it."""

    outcomes: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    """method -> (outcome, ms): outcome `ok`, `cancelled`, `error <code>` or `lost`."""
    pending: int = 0

    def record(self, method: str, outcome: str, ms: float) -> None:
        self.outcomes.setdefault(method, []).append((outcome, ms))

    async def request(
        self,
        session: ServerSession,
        method: str,
        params: Any,
        cancel_after: float | None = None,
        cancel_when: asyncio.Event | None = None,
    ) -> Any:
        """Send `method`; send `$/cancelRequest` if no answer came within `cancel_after`
        seconds or before `cancel_when` is set (the next keystroke), then still wait for
        the answer. Returns the result, or None when it did not succeed."""
        protocol = session.client.protocol
        msg_id = f"soak-{uuid.uuid4().hex[:12]}"
        t0 = time.perf_counter()
        self.pending += 1
        answer = asyncio.ensure_future(protocol.send_request_async(method, params, msg_id=msg_id))
        try:
            if cancel_after is not None or cancel_when is not None:
                waits: set[asyncio.Future[Any]] = {answer}
                if cancel_when is not None:
                    waits.add(asyncio.ensure_future(cancel_when.wait()))
                done, rest = await asyncio.wait(
                    waits, timeout=cancel_after, return_when=asyncio.FIRST_COMPLETED
                )
                for other in rest - {answer}:
                    other.cancel()
                if answer not in done:
                    protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
            result = await asyncio.wait_for(asyncio.shield(answer), ANSWER_WAIT_S)
        except JsonRpcRequestCancelled:
            self.record(method, "cancelled", (time.perf_counter() - t0) * 1000)
            return None
        except JsonRpcException as exc:
            self.record(method, f"error {exc.code}", (time.perf_counter() - t0) * 1000)
            return None
        except TimeoutError:
            self.record(method, "lost", ANSWER_WAIT_S * 1000)
            return None
        finally:
            self.pending -= 1
        self.record(method, "ok", (time.perf_counter() - t0) * 1000)
        return result

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for method, rows in sorted(self.outcomes.items()):
            counts: dict[str, int] = {}
            for outcome, _ in rows:
                counts[outcome] = counts.get(outcome, 0) + 1
            out[method] = {
                "sent": len(rows),
                "outcomes": counts,
                "ok": percentiles([ms for outcome, ms in rows if outcome == "ok"]),
            }
        return out


def process_sample(pid: int) -> tuple[float, int]:
    """Resident memory (MB) and thread count of process `pid` (Linux /proc)."""
    rss_kb, threads = 0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss_kb / 1024, threads


def _change(uri: str, version: int, line: int, start: int, end: int, text: str) -> Any:
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[
            types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(line, start), types.Position(line, end)),
                text=text,
            )
        ],
    )


def _inline(uri: str, line: int, character: int) -> Any:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri),
        position=types.Position(line, character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


class Developer:
    """The simulated user of the soak: one document, typed into at a key per ~150 ms."""

    def __init__(self, session: ServerSession, ledger: Ledger, text: str, path: Path, seed: int):
        self.session, self.ledger = session, ledger
        self.lines = text.splitlines()
        self.uri = session.open(path, text)
        self.version = 1
        self.rng = random.Random(seed)
        self.background: set[asyncio.Task[Any]] = set()
        self.defs = [i for i, s in enumerate(self.lines) if s.lstrip().startswith("def ")]

    def _typeable(self) -> tuple[int, int]:
        """A line worth retyping (ASCII, some code on it) and the column typing starts at."""
        while True:
            i = self.rng.randrange(len(self.lines))
            line = self.lines[i]
            indent = len(line) - len(line.lstrip())
            if line.isascii() and len(line) - indent >= 12 and not line.lstrip().startswith("#"):
                return i, indent + self.rng.randrange(2, min(10, len(line) - indent))

    async def type_round(self) -> None:
        """Cut a line's end, then type it back key by key, asking for ghost text each time."""
        i, col = self._typeable()
        tail = self.lines[i][col:]
        self.version += 1
        self.session.client.text_document_did_change(
            _change(self.uri, self.version, i, col, len(self.lines[i]), "")
        )
        asked: list[asyncio.Task[Any]] = []
        stale = asyncio.Event()
        for k, ch in enumerate(tail[: self.rng.randrange(4, 24)]):
            stale.set()  # the key makes the previous suggestion stale: it is cancelled
            stale = asyncio.Event()
            self.version += 1
            self.session.client.text_document_did_change(
                _change(self.uri, self.version, i, col + k, col + k, ch)
            )
            asked.append(
                asyncio.ensure_future(
                    self.ledger.request(
                        self.session,
                        types.TEXT_DOCUMENT_INLINE_COMPLETION,
                        _inline(self.uri, i, col + k + 1),
                        cancel_when=stale,
                    )
                )
            )
            await asyncio.sleep(self.rng.uniform(0.08, 0.22))
        await asyncio.gather(*asked)  # the last suggestion is waited for (the user pauses)
        typed = k + 1
        self.version += 1
        self.session.client.text_document_did_change(  # the rest of the line, pasted back
            _change(self.uri, self.version, i, col + typed, col + typed, tail[typed:])
        )

    async def code_action(self) -> None:
        line = self.rng.choice(self.defs)
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(self.uri),
            range=types.Range(types.Position(line, 4), types.Position(line, 4)),
            context=types.CodeActionContext(diagnostics=[]),
        )
        actions = await self.ledger.request(self.session, types.TEXT_DOCUMENT_CODE_ACTION, params)
        if actions:
            await self.ledger.request(
                self.session,
                types.CODE_ACTION_RESOLVE,
                actions[0],
                cancel_after=self.rng.choice([1.0, None]),
            )

    def chat(self) -> None:
        """A question about the function at a random `def`, answered while typing goes on;
        most are cancelled mid-stream, some read to the end."""
        line = self.rng.choice(self.defs)
        params = {
            "messages": [{"role": "user", "content": "What does this function do?"}],
            "context": {
                "uri": self.uri,
                "range": {
                    "start": {"line": line, "character": 0},
                    "end": {"line": min(line + 15, len(self.lines) - 1), "character": 0},
                },
            },
            "partialResultToken": f"chat-{uuid.uuid4().hex[:8]}",
        }
        cancel = self.rng.choice([0.5, 2.0, 4.0, None])
        task = asyncio.ensure_future(
            self.ledger.request(self.session, "lspLlm/chat", params, cancel_after=cancel)
        )
        self.background.add(task)
        task.add_done_callback(self.background.discard)


async def _monitor(pid: int, samples: list[tuple[float, float, int]], t0: float) -> None:
    while True:
        try:
            rss, threads = process_sample(pid)
        except OSError:
            return
        samples.append((time.perf_counter() - t0, rss, threads))
        await asyncio.sleep(1.0)


def _server_settings(args: Any) -> dict[str, Any]:
    # The fairness run opens a copy of one file per completion: no extra context from them.
    settings: dict[str, Any] = {
        "chat": {"maxNewTokens": args.chat_tokens},
        "completion": {"extraContext": False},
    }
    if args.model:
        settings["model"] = args.model
    return settings


async def soak(args: Any) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    session = ServerSession(
        _server_settings(args),
        server_args=["--log-file", str(out / "server.log")],
        capabilities=types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True),
            text_document=types.TextDocumentClientCapabilities(
                code_action=types.CodeActionClientCapabilities(
                    resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"])
                )
            ),
        ),
    )
    await session.start()
    server = session.client._server
    assert server is not None
    ledger = Ledger()
    samples: list[tuple[float, float, int]] = []
    text = long_file()
    dev = Developer(session, ledger, text, out / "soak.py", args.seed)
    t0 = time.perf_counter()
    monitor = asyncio.ensure_future(_monitor(server.pid, samples, t0))
    rounds = 0
    try:
        await dev.type_round()  # warm-up: the first suggestion reads the whole file
        start_rss, start_threads = process_sample(server.pid)
        deadline = time.perf_counter() + args.minutes * 60
        while time.perf_counter() < deadline:
            rounds += 1
            if rounds % 7 == 0:
                dev.chat()
            if rounds % 5 == 0:
                await dev.code_action()
            await dev.type_round()
            if rounds % 10 == 0:
                rss, threads = process_sample(server.pid)
                _say(
                    f"{time.perf_counter() - t0:5.0f} s: {rounds} rounds, RSS {rss:.0f} MB, "
                    f"{threads} threads, {ledger.pending} pending"
                )
        await asyncio.gather(*dev.background)
        end_rss, end_threads = process_sample(server.pid)
        alive = server.returncode is None
    finally:
        monitor.cancel()
        await session.close()
    summary = ledger.summary()
    return {
        "minutes": args.minutes,
        "model": args.model or "default",
        "file_lines": len(text.splitlines()),
        "rounds": rounds,
        "server_alive_at_end": alive,
        "requests": summary,
        "lost": sum(r["outcomes"].get("lost", 0) for r in summary.values()),
        "rss_mb": {
            "after_warmup": start_rss,
            "max": max(s[1] for s in samples),
            "end": end_rss,
        },
        "threads": {
            "after_warmup": start_threads,
            "max": max(s[2] for s in samples),
            "end": end_threads,
        },
        "samples": samples,
    }


async def _completions(
    session: ServerSession, ledger: Ledger, spots: list[tuple[str, int, int]]
) -> list[float]:
    took = []
    for uri, line, character in spots:
        t0 = time.perf_counter()
        params = _inline(uri, line, character)
        await ledger.request(session, types.TEXT_DOCUMENT_INLINE_COMPLETION, params)
        took.append((time.perf_counter() - t0) * 1000)
    return took


async def fairness(args: Any) -> dict[str, Any]:
    """Completion latency from one daemon session, idle and while another session chats."""
    from lsp_llm.bench.scale import free_port, listening, workloads

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [sys.executable, "-m", "lsp_llm", "--log-file", str(out / "daemon.log"), "serve"]
    cmd += ["--tcp", str(port)]
    if args.model:
        cmd += ["--model", args.model]
    daemon = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    ledger = Ledger()
    sessions: list[ServerSession] = []
    try:
        await listening(port)
        for _ in range(2):
            s = ServerSession(_server_settings(args), connect=("127.0.0.1", port))
            await s.start()
            sessions.append(s)
        typist, chatter = sessions
        n = args.fairness_requests
        work = workloads(1, 2 * n + 1)[0]
        spots = []
        for i, spot in enumerate(work):
            uri = typist.open(out / f"fair-{i}.py", spot.text)
            spots.append((uri, spot.line, spot.character))
        code = long_file(120)
        chat_uri = chatter.open(out / "chat.py", code)
        await _completions(typist, ledger, spots[:1])
        idle = await _completions(typist, ledger, spots[1 : n + 1])
        _say(f"idle: completion p50 {statistics.median(idle):.0f} ms")
        chats: list[dict[str, Any]] = []
        stop = asyncio.Event()

        async def keep_chatting() -> None:
            while not stop.is_set():
                params = {
                    "messages": [{"role": "user", "content": "Explain this code in detail."}],
                    "context": {"uri": chat_uri},
                    "partialResultToken": f"chat-{uuid.uuid4().hex[:8]}",
                }
                result = await ledger.request(chatter, "lspLlm/chat", params)
                if result is not None:
                    chats.append(plain(result))

        chatting = asyncio.ensure_future(keep_chatting())
        await asyncio.sleep(args.chat_lead)  # the chat is past its prefill, decoding
        busy = await _completions(typist, ledger, spots[n + 1 :])
        stop.set()
        await chatting
        _say(f"during a chat: completion p50 {statistics.median(busy):.0f} ms")
    finally:
        for s in sessions:
            await s.close()
        daemon.terminate()
        daemon.wait(30)
    step_ms = [
        1000 / c["timings"]["tokensPerSecond"]
        for c in chats
        if c.get("timings", {}).get("tokensPerSecond")
    ]
    return {
        "idle": percentiles(idle),
        "during_chat": percentiles(busy),
        "p50_ratio": statistics.median(busy) / statistics.median(idle),
        "chats": len(chats),
        "chat_ms_per_token": statistics.median(step_ms) if step_ms else None,
        "requests": ledger.summary(),
    }


def markdown(soaked: dict[str, Any] | None, fair: dict[str, Any] | None) -> str:
    lines: list[str] = []
    if soaked is not None:
        rss, thr = soaked["rss_mb"], soaked["threads"]
        lines += [
            f"soak: {soaked['minutes']} min, {soaked['rounds']} typing rounds on a "
            f"{soaked['file_lines']}-line file, model {soaked['model']}; "
            f"server alive at the end: {soaked['server_alive_at_end']}; "
            f"requests without a response: {soaked['lost']}",
            f"RSS after warm-up {rss['after_warmup']:.0f} MB, max {rss['max']:.0f} MB, end "
            f"{rss['end']:.0f} MB; threads {thr['after_warmup']} / max {thr['max']} / end "
            f"{thr['end']}",
            "",
            "| request | sent | outcomes | p50 ms | p90 ms | p99 ms |",
            "| --- | ---: | --- | ---: | ---: | ---: |",
        ]
        for method, row in soaked["requests"].items():
            ok = row["ok"]
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(row["outcomes"].items()))
            cells = [f"{ok[k]:.0f}" if k in ok else "-" for k in ("p50_ms", "p90_ms", "p99_ms")]
            lines.append(f"| `{method}` | {row['sent']} | {outcomes} | " + " | ".join(cells) + " |")
    if fair is not None:
        idle, busy = fair["idle"], fair["during_chat"]
        step = fair["chat_ms_per_token"]
        lines += [
            "",
            "| daemon, 2 sessions | completions | p50 ms | p90 ms | max ms |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| other session idle | {idle['n']} | {idle['p50_ms']:.0f} | {idle['p90_ms']:.0f} "
            f"| {idle['max_ms']:.0f} |",
            f"| other session streaming a chat | {busy['n']} | {busy['p50_ms']:.0f} | "
            f"{busy['p90_ms']:.0f} | {busy['max_ms']:.0f} |",
            "",
            f"p50 during a chat / idle: {fair['p50_ratio']:.2f}x; {fair['chats']} chats "
            "finished meanwhile" + (f", {step:.0f} ms per chat token" if step else ""),
        ]
    return "\n".join(lines)


def main(args: Any) -> int:
    soaked = None if args.minutes <= 0 else asyncio.run(soak(args))
    fair = None if args.fairness_requests <= 0 else asyncio.run(fairness(args))
    text = markdown(soaked, fair)
    print(text)
    out = Path(args.out)
    report = {"soak": soaked, "fairness": fair}
    (out / "soak.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "soak.md").write_text(text + "\n", encoding="utf-8")
    lost = (soaked or {}).get("lost", 0) + sum(
        r["outcomes"].get("lost", 0) for r in ((fair or {}).get("requests") or {}).values()
    )
    return 1 if lost or (soaked is not None and not soaked["server_alive_at_end"]) else 0
