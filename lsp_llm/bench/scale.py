"""`lsp-llm bench-scale`: the remote backend under load. A `lsp-llm serve --tcp` daemon
fronting an OpenAI-compatible engine takes inline completions from one editor session, then
from several at once (each its own documents), at held-out spots in stdlib code; the same
prompts also go to the engine's API directly, so the report shows what lsp-llm adds per
request (prompt building, LSP, cutting) next to what the engine takes.

Start the engine with parallel slots to see it batch, e.g. llama.cpp's
`llama-server -m MODEL.gguf -np 4 -c 8192 --port 8080`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from lsp_llm.client import ServerSession
from lsp_llm.config import Settings, parse_settings
from lsp_llm.generation.backend import Backend
from lsp_llm.remote.generation import request_body


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def listening(port: int, seconds: float = 60.0) -> None:
    """Wait until a daemon started on `port` accepts connections."""
    for _ in range(int(seconds * 10)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Spot:
    text: str
    offset: int
    line: int
    character: int


def workloads(sessions: int, requests: int) -> list[list[Spot]]:
    """For each session its own held-out stdlib file, and `requests` cursors moving down it
    (the end of every third line from line 30), as a developer works down a file: each
    prompt extends the previous one, so an engine's prompt cache serves the shared part.
    Files whose code before the last cursor fits the default prompt window are taken, so
    the window never slides."""
    from lsp_llm.train.data import load_sources

    last = 30 + 3 * (requests - 1)
    files = [
        s.text
        for s in load_sources(held_out=True)
        if s.text.isascii()
        and s.text.count("\n") > last + 10
        and len("\n".join(s.text.split("\n")[:last])) < 4000
    ]
    if len(files) < sessions:
        raise SystemExit(f"only {len(files)} held-out files are long enough; ask for fewer")
    out = []
    for text in files[:sessions]:
        lines = text.split("\n")
        spots = []
        for line in range(30, last + 1, 3):
            offset = sum(len(ln) + 1 for ln in lines[:line]) + len(lines[line])
            spots.append(Spot(text, offset, line, len(lines[line])))
        out.append(spots)
    return out


def _stats(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "mean_ms": statistics.fmean(ms),
    }


class Paths:
    """The three ways one completion can reach the engine, timed from the caller."""

    def __init__(
        self, session: ServerSession, backend: Backend, settings: Settings, url: str, root: Path
    ) -> None:
        self.session, self.backend, self.settings = session, backend, settings
        self.url = url.rstrip("/")
        self.root = root
        self.http = httpx.AsyncClient(timeout=120)

    async def lsp(self, spot: Spot, tag: str) -> float:
        uri = self.session.open(self.root / f"{tag}.py", spot.text)
        t0 = time.perf_counter()
        await self.session.inline(uri, spot.line, spot.character)  # ASCII: UTF-16 = chars
        return (time.perf_counter() - t0) * 1000

    def _plan(self, spot: Spot) -> Any:
        from lsp_llm.context.completion import plan_completion
        from lsp_llm.context.prompts import EditorContext

        return plan_completion(
            self.backend.tokens, EditorContext(spot.text, spot.offset), self.settings
        )

    async def backend_only(self, spot: Spot) -> float:
        """In-process: the same plan through `RemoteBackend` (our stop rules, no LSP)."""
        plan = self._plan(spot)
        t0 = time.perf_counter()
        await self.backend.stream(plan.request, deltas=False).result()
        return (time.perf_counter() - t0) * 1000

    async def raw(self, spot: Spot) -> float:
        """The same body straight to the engine, read to the engine's own end."""
        path, body = request_body(self._plan(spot).request, self.backend.serving.model)
        t0 = time.perf_counter()
        async with self.http.stream("POST", self.url + path, json=body) as response:
            async for _ in response.aiter_lines():
                pass
        return (time.perf_counter() - t0) * 1000


async def _session(port: int, settings: dict[str, Any]) -> ServerSession:
    session = ServerSession(settings, connect=("127.0.0.1", port))
    await session.start()
    return session


async def _walk(session: ServerSession, spots: list[Spot], tag: str, root: Path) -> list[float]:
    took = []
    for i, spot in enumerate(spots):
        uri = session.open(root / f"{tag}-{i}.py", spot.text)
        t0 = time.perf_counter()
        await session.inline(uri, spot.line, spot.character)
        took.append((time.perf_counter() - t0) * 1000)
    return took


async def run(args: Any) -> dict[str, Any]:
    from lsp_llm.backends import load_backend

    backend_wire = {"url": args.backend_url, "model": args.backend_model}
    settings_wire: dict[str, Any] = {
        "model": args.model,
        # each request opens a copy of a session's file: no extra context from the copies
        "completion": {"maxNewTokens": args.max_new_tokens, "extraContext": False},
    }
    settings, errors = parse_settings({**settings_wire, "backend": backend_wire})
    if errors:
        raise SystemExit("; ".join(errors))
    work = workloads(args.sessions, args.requests)
    root = Path(args.out) / "docs"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lsp_llm",
            "serve",
            "--tcp",
            str(port),
            "--backend-url",
            args.backend_url,
            *(["--backend-model", args.backend_model] if args.backend_model else []),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    backend = await asyncio.to_thread(load_backend, settings, lambda f, m: None)
    sessions: list[ServerSession] = []
    try:
        await listening(port)
        sessions = [await _session(port, settings_wire) for _ in range(args.sessions)]
        _say(f"{args.sessions} sessions, {args.requests} cursors each; warming the engine")
        await asyncio.gather(
            *(
                _walk(s, w[:1], f"warm{k}", root)
                for k, (s, w) in enumerate(zip(sessions, work, strict=True))
            )
        )
        paths = Paths(sessions[0], backend, settings, args.backend_url, root)
        # The three paths, one cursor at a time, in a rotating order: whichever goes first
        # reads the cursor's new lines into the engine's cache, the others find them there.
        timed: dict[str, list[float]] = {"lsp": [], "backend": [], "raw": []}
        for i, spot in enumerate(work[0]):
            order = ["lsp", "backend", "raw"]
            order = order[i % 3 :] + order[: i % 3]
            for name in order:
                if name == "lsp":
                    timed[name].append(await paths.lsp(spot, f"one-{i}"))
                elif name == "backend":
                    timed[name].append(await paths.backend_only(spot))
                else:
                    timed[name].append(await paths.raw(spot))
        await paths.http.aclose()
        _say(f"1 session: median {statistics.median(timed['lsp']):.0f} ms")
        t0 = time.perf_counter()
        many = await asyncio.gather(
            *(
                _walk(s, w, f"s{k}", root)
                for k, (s, w) in enumerate(zip(sessions, work, strict=True))
            )
        )
        many_wall = time.perf_counter() - t0
        flat = [ms for per in many for ms in per]
        _say(f"{args.sessions} sessions: median {statistics.median(flat):.0f} ms")
        t0 = time.perf_counter()
        alone = await _walk(sessions[0], work[0], "alone", root)
        alone_wall = time.perf_counter() - t0
    finally:
        for session in sessions:
            await session.close()
        backend.close()
        daemon.kill()
        daemon.wait(10)
    lsp_share = [a - b for a, b in zip(timed["lsp"], timed["backend"], strict=True)]
    return {
        "engine": args.backend_url,
        "model": args.model,
        "requests_per_session": args.requests,
        "raw": _stats(timed["raw"]),
        "backend": _stats(timed["backend"]),
        "lsp": _stats(timed["lsp"]),
        "one_session": {
            **_stats(alone),
            "wall_s": alone_wall,
            "requests_per_s": len(alone) / alone_wall,
        },
        "sessions": args.sessions,
        "many_sessions": {
            **_stats(flat),
            "wall_s": many_wall,
            "requests_per_s": len(flat) / many_wall,
        },
        "lsp_share_ms": {
            "median": statistics.median(lsp_share),
            "mean": statistics.fmean(lsp_share),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    n = report["sessions"]
    one, many = report["one_session"], report["many_sessions"]
    lines = [
        f"engine {report['engine']}, prompts built with the {report['model']} tokenizer, "
        f"{report['requests_per_session']} inline completions per session, cursors moving "
        "down a held-out file",
        "",
        "| sessions through `lsp-llm serve --tcp` | median ms | p90 ms | requests/s |",
        "|---|---:|---:|---:|",
        f"| 1 | {one['median_ms']:.0f} | {one['p90_ms']:.0f} | {one['requests_per_s']:.2f} |",
        f"| {n} at once | {many['median_ms']:.0f} | {many['p90_ms']:.0f} "
        f"| {many['requests_per_s']:.2f} |",
        "",
        "| one completion, same prompt | median ms | p90 ms |",
        "|---|---:|---:|",
    ]
    for key, label in (
        ("raw", "the engine's API directly, read to the engine's own end"),
        ("backend", "`RemoteBackend` in-process (our stop rules close the stream)"),
        ("lsp", "through `lsp-llm serve --tcp` (LSP, documents, cutting)"),
    ):
        s = report[key]
        lines.append(f"| {label} | {s['median_ms']:.0f} | {s['p90_ms']:.0f} |")
    share = report["lsp_share_ms"]
    lines += [
        "",
        f"The LSP path's own share (through the daemon minus in-process, same cursor): "
        f"median {share['median']:.1f} ms, mean {share['mean']:.1f} ms",
    ]
    return "\n".join(lines)


def main(args: Any) -> int:
    report = asyncio.run(run(args))
    text = markdown(report)
    print(text)
    out = Path(args.out)
    (out / "scale.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "scale.md").write_text(text + "\n", encoding="utf-8")
    return 0
