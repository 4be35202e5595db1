"""The latencies an editor feels, beyond raw decoding speed: how fast a cancel leaves the
engine idle, how fast a second request comes back after a one-line edit (with and without
the KV-cache prefix reuse), and what the LSP transport adds to an inline completion."""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lsp_llm.bench.cases import Case
from lsp_llm.config import Settings, settings_to_wire
from lsp_llm.context.completion import plan_completion
from lsp_llm.context.prompts import EditorContext
from lsp_llm.generation.backend import Backend
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import Done, GenerationRequest, StopRules, TextDelta

DOCUMENT_LINES = 2000


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


class _Watch:
    """An engine event sink that signals after `after` pieces of text and at the end."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.seen = 0
        self.started = threading.Event()
        self.finished = threading.Event()
        self.done: Done | None = None

    def __call__(self, event: Any) -> None:
        if isinstance(event, TextDelta):
            self.seen += 1
            if self.seen >= self.after:
                self.started.set()
            return
        if isinstance(event, Done):
            self.done = event
        self.finished.set()


def cancel_latency(engine: Backend, case: Case, repeats: int = 5, after: int = 8) -> dict[str, Any]:
    """Start a long generation, cancel it from another thread after `after` pieces of text
    (mid forward pass, as a `$/cancelRequest` arrives), and time until the engine is idle."""
    ms: list[float] = []
    forwards: list[int] = []
    for _ in range(repeats):
        watch = _Watch(after)
        request = GenerationRequest(case.prompt_ids, max_new_tokens=100_000, stop=StopRules())
        job = engine.submit(request, watch)
        watch.started.wait(120)
        t0 = time.perf_counter()
        job.cancel()
        watch.finished.wait(120)
        ms.append((time.perf_counter() - t0) * 1000)
        if watch.done is not None:
            forwards.append(watch.done.stats.forwards_after_cancel)
    return {
        "repeats": repeats,
        "median_ms": _median(ms),
        "max_ms": max(ms, default=0.0),
        "max_forwards_after_cancel": max(forwards, default=0),
    }


def edit_document(sources: list[tuple[str, str]], seed: int = 0) -> tuple[str, list[int]]:
    """A `DOCUMENT_LINES`-line file of held-out code, and a few cursor lines (indented code
    lines in its last half) for the edit benchmark."""
    lines: list[str] = []
    for _, text in sources:
        lines.extend(text.split("\n"))
        if len(lines) >= DOCUMENT_LINES:
            break
    lines = lines[:DOCUMENT_LINES]
    candidates = [
        i
        for i in range(DOCUMENT_LINES // 2, DOCUMENT_LINES - 50)
        if lines[i].startswith("    ") and lines[i].strip() and not lines[i].strip().startswith("#")
    ]
    cursors = sorted(random.Random(seed).sample(candidates, min(5, len(candidates))))
    return "\n".join(lines) + "\n", cursors


def _time_to_first_token(
    engine: Backend, info: TokenizerInfo, settings: Settings, text: str, offset: int, reuse: bool
) -> tuple[float, Done]:
    """Milliseconds from the request (prompt building included) to the first generated
    token, and the engine's result (prompt size, reused prefix)."""
    t0 = time.perf_counter()
    plan = plan_completion(info, EditorContext(text, offset, "python"), settings)
    request = replace(
        plan.request,
        max_new_tokens=1,
        stop=StopRules(stop_token_ids=plan.request.stop.stop_token_ids),
        reuse_prefix=reuse,
    )
    done = engine.generate(request)
    return (time.perf_counter() - t0) * 1000, done


def edit_reuse(
    engine: Backend, info: TokenizerInfo, settings: Settings, document: str, cursors: list[int]
) -> dict[str, Any]:
    """For each cursor line: a first request (cold), then the user inserts one line just
    above the cursor and asks again, once with the cached prefix and once without; then
    types one character at the cursor and asks again (with the cached prefix)."""
    lines = document.split("\n")
    first: list[float] = []
    warm: list[float] = []
    cold: list[float] = []
    typed: list[float] = []
    reused: list[int] = []
    prompt_tokens: list[int] = []
    for n in cursors:
        indent = lines[n][: len(lines[n]) - len(lines[n].lstrip())]
        before = "\n".join(lines[:n]) + "\n" + indent
        after = "\n" + "\n".join(lines[n + 1 :])
        ms, _ = _time_to_first_token(
            engine, info, settings, before + after, len(before), reuse=False
        )
        first.append(ms)
        edited = before[: len(before) - len(indent)] + indent + "result = None\n" + indent
        ms, done = _time_to_first_token(
            engine, info, settings, edited + after, len(edited), reuse=True
        )
        warm.append(ms)
        reused.append(done.stats.reused_prefix_tokens)
        prompt_tokens.append(done.usage.prompt_tokens)
        ms, _ = _time_to_first_token(
            engine, info, settings, edited + after, len(edited), reuse=False
        )
        cold.append(ms)
        key = edited + "r"
        ms, _ = _time_to_first_token(engine, info, settings, key + after, len(key), reuse=True)
        typed.append(ms)
    return {
        "document_lines": DOCUMENT_LINES,
        "cursors": len(cursors),
        "prompt_tokens": _median([float(p) for p in prompt_tokens]),
        "reused_tokens": _median([float(r) for r in reused]),
        "first_ms": _median(first),
        "second_with_reuse_ms": _median(warm),
        "second_without_reuse_ms": _median(cold),
        "ratio_with_reuse": _median(warm) / _median(first) if first else 0.0,
        "ratio_without_reuse": _median(cold) / _median(first) if first else 0.0,
        "keystroke_ms": _median(typed),
        "ratio_keystroke": _median(typed) / _median(first) if first else 0.0,
    }


def _wire(settings: Settings) -> dict[str, Any]:
    def prune(d: dict[str, Any]) -> dict[str, Any]:
        return {k: prune(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    return prune(settings_to_wire(settings))


CHAT_QUESTIONS = ("What does a Python generator do?", "How do I reverse a list in Python?")
CHAT_TOKENS = 32


@dataclass
class ProtocolResult:
    server_ms: list[float] = field(default_factory=list)
    engine_ms: list[float] = field(default_factory=list)
    same: int = 0
    lsp_cancel_ms: list[float] = field(default_factory=list)
    chat_server_ms: list[float] = field(default_factory=list)
    """Chat: milliseconds to the first streamed delta at the client."""
    chat_engine_ms: list[float] = field(default_factory=list)
    chat_same: int = 0

    def summary(self) -> dict[str, Any]:
        server, engine = _median(self.server_ms), _median(self.engine_ms)
        chat_server, chat_engine = _median(self.chat_server_ms), _median(self.chat_engine_ms)
        # Each served request is timed next to the same request in-process, so the ratio is
        # taken pair by pair: the prompts differ in length, and the median of each side
        # alone may land on different prompts, and on the machine's drift between rounds.
        paired = [s / e for s, e in zip(self.server_ms, self.engine_ms, strict=True) if e > 0]
        return {
            "requests": len(self.server_ms),
            "server_median_ms": server,
            "engine_median_ms": engine,
            "overhead_ratio": _median(paired),
            "ratio_of_medians": server / engine if engine else 0.0,
            "same_suggestion": self.same,
            "lsp_cancel_median_ms": _median(self.lsp_cancel_ms),
            "chat_requests": len(self.chat_server_ms),
            "chat_first_delta_server_ms": chat_server,
            "chat_first_delta_engine_ms": chat_engine,
            "chat_first_delta_ratio": chat_server / chat_engine if chat_engine else 0.0,
            "chat_same_reply": self.chat_same,
        }


class _FirstDelta:
    """Collects streamed text and the time of its first piece after `start`."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first_ms: float | None = None
        self.text: list[str] = []

    def __call__(self, piece: str) -> None:
        if self.first_ms is None:
            self.first_ms = (time.perf_counter() - self.start) * 1000
        self.text.append(piece)


async def _chat_side_by_side(
    session: Any, engine: Backend, info: TokenizerInfo, settings: Settings, out: ProtocolResult
) -> None:
    """Greedy chat turns through the server and in-process, same settings, alternating."""
    from lsp_llm.context.chat import plan_chat

    for question in CHAT_QUESTIONS:
        messages = [{"role": "user", "content": question}]
        served = _FirstDelta()
        reply = await session.chat(messages, served)
        local = _FirstDelta()
        done = engine.generate(plan_chat(info, settings, messages), on_delta=local)
        if served.first_ms is not None and local.first_ms is not None:
            out.chat_server_ms.append(served.first_ms)
            out.chat_engine_ms.append(local.first_ms)
        out.chat_same += reply.content == done.text == "".join(served.text)


async def protocol_overhead(
    engine: Backend,
    info: TokenizerInfo,
    settings: Settings,
    document: str,
    cursors: list[int],
    repeats: int,
    threads: int,
    workdir: Path,
) -> dict[str, Any]:
    """Inline completions through `lsp-llm serve` over stdio against the same completions
    in-process (prompt building, generation and clean-up), alternating, same positions;
    greedy chat turns both ways (time to the first streamed delta); then `$/cancelRequest`
    round trips on chat requests."""
    from lsprotocol import types
    from pygls.exceptions import JsonRpcRequestCancelled

    from lsp_llm.client import ServerSession

    os.environ["OMP_NUM_THREADS"] = str(threads)  # the server process runs with ours
    lines = document.split("\n")
    workdir.mkdir(parents=True, exist_ok=True)
    # greedy, short chat replies, so both sides must produce the same text; the same
    # completion prompts both sides (the server's extra context would add the copies of
    # this document the rounds open)
    settings = replace(
        settings,
        chat=replace(settings.chat, temperature=0.0, max_new_tokens=CHAT_TOKENS),
        completion=replace(settings.completion, extra_context=False),
    )
    session = ServerSession(_wire(settings))
    await session.start()
    out = ProtocolResult()
    try:
        uri = session.open(workdir / "bench_document.py", document)
        positions = []
        for n in cursors:
            column = len(lines[n]) - len(lines[n].lstrip())
            offset = sum(len(x) + 1 for x in lines[:n]) + column
            positions.append((n, column, offset))
        for n, column, offset in positions:  # warm both sides up once
            await session.inline(uri, n, column)
            engine.generate(
                plan_completion(info, EditorContext(document, offset), settings).request
            )
        for r in range(repeats):
            # A new document each round: the same state again would be answered by the
            # server's typing-ahead cache, without the model this compares.
            uri = session.open(workdir / f"bench_document_{r}.py", document)
            for n, column, offset in positions:
                t0 = time.perf_counter()
                result = await session.inline(uri, n, column)
                out.server_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                plan = plan_completion(info, EditorContext(document, offset), settings)
                done = engine.generate(plan.request)
                suggestion = plan.suggestion(done.text, done.reason)
                out.engine_ms.append((time.perf_counter() - t0) * 1000)
                items = result.items if result is not None else []
                served = items[0].insert_text if items else None
                out.same += served == (suggestion.text if suggestion else None)
            await _chat_side_by_side(session, engine, info, settings, out)
        for _ in range(3):
            deltas: list[str] = []
            pending = asyncio.ensure_future(
                session.chat(
                    [{"role": "user", "content": "Explain Python decorators."}], deltas.append
                )
            )
            while len(deltas) < 3 and not pending.done():
                await asyncio.sleep(0.002)
            request_id = list(session.client.protocol._request_futures)[-1]
            t0 = time.perf_counter()
            session.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=request_id))
            try:
                await asyncio.wait_for(pending, 60)
            except JsonRpcRequestCancelled:
                out.lsp_cancel_ms.append((time.perf_counter() - t0) * 1000)
    finally:
        await session.close()
    return out.summary()
