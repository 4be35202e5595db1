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
from pathlib import Path
from typing import Any

import httpx

from lsp_llm.client import ServerSession
from lsp_llm.config import Settings, parse_settings
from lsp_llm.evaluation.holes import Hole, punch_holes
from lsp_llm.remote.generation import request_body


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spots(count: int, seed: int) -> list[Hole]:
    """Cursor positions in held-out stdlib code: ends of lines and empty lines in bodies."""
    from lsp_llm.train.data import load_sources

    sources = [(s.path, s.text) for s in load_sources(held_out=True)]
    holes = punch_holes(sources, per_kind=count, seed=seed)
    picked = [h for h in holes if h.kind in ("line", "body", "indent")]
    return picked[:count]


def _stats(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "n": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "mean_ms": statistics.fmean(ms),
    }


async def _session_run(
    port: int, settings: dict[str, Any], holes: list[Hole], tag: str, root: Path
) -> list[float]:
    session = ServerSession(settings, connect=("127.0.0.1", port))
    await session.start()
    took: list[float] = []
    try:
        for i, hole in enumerate(holes):
            uri = session.open(root / f"{tag}-{i}.py", hole.text)
            line = hole.text.count("\n", 0, hole.offset)
            character = hole.offset - (hole.text.rfind("\n", 0, hole.offset) + 1)
            t0 = time.perf_counter()
            await session.inline(uri, line, character)  # ASCII sources: UTF-16 = characters
            took.append((time.perf_counter() - t0) * 1000)
    finally:
        await session.close()
    return took


async def _direct(url: str, settings: Settings, holes: list[Hole], key: str | None) -> list[float]:
    """The same completions straight to the engine: its own time per request."""
    from lsp_llm.backend import load_backend
    from lsp_llm.context.completion import plan_completion
    from lsp_llm.context.prompts import EditorContext

    backend = await asyncio.to_thread(load_backend, settings, lambda f, m: None)
    took: list[float] = []
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with httpx.AsyncClient(timeout=120, headers=headers) as http:
            for hole in holes:
                plan = plan_completion(
                    backend.tokens, EditorContext(hole.text, hole.offset), settings
                )
                path, body = request_body(plan.request, backend.serving.model)
                t0 = time.perf_counter()
                async with http.stream("POST", url.rstrip("/") + path, json=body) as response:
                    async for _ in response.aiter_lines():
                        pass
                took.append((time.perf_counter() - t0) * 1000)
    finally:
        backend.close()
    return took


async def run(args: Any) -> dict[str, Any]:
    settings_wire: dict[str, Any] = {
        "model": args.model,
        "backend": {
            "url": args.backend_url,
            **({"model": args.backend_model} if args.backend_model else {}),
        },
        "completion": {"maxNewTokens": args.max_new_tokens},
    }
    settings, errors = parse_settings(settings_wire)
    if errors:
        raise SystemExit("; ".join(errors))
    holes = spots(args.requests, args.seed)
    root = Path(args.out) / "docs"
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
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
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        _say(f"warming up ({len(holes)} spots)")
        await _session_run(port, settings_wire, holes[:2], "warm", root)
        direct = await _direct(args.backend_url, settings, holes, settings.backend.key())
        _say(f"direct to the engine: median {statistics.median(direct):.0f} ms")
        t0 = time.perf_counter()
        one = await _session_run(port, settings_wire, holes, "one", root)
        one_wall = time.perf_counter() - t0
        _say(f"1 session: median {statistics.median(one):.0f} ms")
        t0 = time.perf_counter()
        many = await asyncio.gather(
            *(_session_run(port, settings_wire, holes, f"s{k}", root) for k in range(args.sessions))
        )
        many_wall = time.perf_counter() - t0
        flat = [ms for per in many for ms in per]
        _say(f"{args.sessions} sessions: median {statistics.median(flat):.0f} ms")
    finally:
        daemon.kill()
        daemon.wait(10)
    overhead = [s - d for s, d in zip(one, direct, strict=True)]
    return {
        "engine": args.backend_url,
        "model": args.model,
        "requests_per_session": len(holes),
        "direct": _stats(direct),
        "one_session": {**_stats(one), "wall_s": one_wall, "requests_per_s": len(one) / one_wall},
        "sessions": args.sessions,
        "many_sessions": {
            **_stats(flat),
            "wall_s": many_wall,
            "requests_per_s": len(flat) / many_wall,
        },
        "overhead_ms": {"median": statistics.median(overhead), "mean": statistics.fmean(overhead)},
    }


def markdown(report: dict[str, Any]) -> str:
    n = report["sessions"]
    rows = [
        ("the engine's API directly", report["direct"], None),
        ("1 session through `lsp-llm serve --tcp`", report["one_session"], report["one_session"]),
        (f"{n} sessions at once", report["many_sessions"], report["many_sessions"]),
    ]
    lines = [
        f"engine {report['engine']}, prompts built with the {report['model']} tokenizer, "
        f"{report['requests_per_session']} inline completions per session",
        "",
        "| path | median ms | p90 ms | requests/s |",
        "|---|---:|---:|---:|",
    ]
    for label, s, wall in rows:
        rate = f"{wall['requests_per_s']:.2f}" if wall else ""
        lines.append(f"| {label} | {s['median_ms']:.0f} | {s['p90_ms']:.0f} | {rate} |")
    o = report["overhead_ms"]
    lines.append("")
    lines.append(
        f"lsp-llm's own share per request (1 session minus direct, same prompt): "
        f"median {o['median']:.1f} ms, mean {o['mean']:.1f} ms"
    )
    return "\n".join(lines)


def main(args: Any) -> int:
    report = asyncio.run(run(args))
    text = markdown(report)
    print(text)
    out = Path(args.out)
    (out / "scale.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "scale.md").write_text(text + "\n", encoding="utf-8")
    return 0
