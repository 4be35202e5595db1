"""`lsp-llm complete FILE:LINE:COL` and `lsp-llm chat QUESTION`: one request through a
real server session (a fresh `lsp-llm serve`, or a running daemon with `--connect`), so
what a user tries on the command line is what an editor gets. Timings go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from lsp_llm.commands.common import (
    MODEL_HELP,
    Subparsers,
    parse_tcp,
    print_timings,
    settings,
    token_file,
)


def add_parser(sub: Subparsers) -> None:
    for name, helptext in (
        ("complete", "print the inline completion at FILE:LINE:COL (1-based)"),
        ("chat", "stream a chat answer to QUESTION"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "complete":
            p.add_argument("location", metavar="FILE:LINE:COL")
        else:
            p.add_argument("question")
            p.add_argument("--file", help="attach this file as code context")
        p.add_argument("--model", help=MODEL_HELP)
        p.add_argument("--draft-model", help="draft model id or folder")
        p.add_argument("--settings", help="more settings as a JSON object (camelCase)")
        p.add_argument(
            "--connect",
            type=parse_tcp,
            metavar="[HOST:]PORT",
            help="use a running `lsp-llm serve --tcp` daemon instead of starting a server",
        )
        p.add_argument(
            "--token-file", help="the daemon's token file (default: where the daemon writes it)"
        )


def run(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    runner = _complete if args.command == "complete" else _chat
    try:
        return asyncio.run(runner(args))
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"lsp-llm: {exc}", file=sys.stderr)
        return 1


async def _complete(args: argparse.Namespace) -> int:
    from lsp_llm.client import ServerSession

    file, line, col = args.location.rsplit(":", 2)
    path = Path(file)
    text = path.read_text(encoding="utf-8")
    session = ServerSession(settings(args), connect=args.connect, token_file=token_file(args))
    await session.start()
    try:
        uri = session.open(path, text)
        t0 = time.perf_counter()
        result = await session.inline(uri, int(line) - 1, int(col) - 1)
        ms = (time.perf_counter() - t0) * 1000
    finally:
        await session.close()
    items = result.items if result is not None else []
    print(items[0].insert_text if items else "", flush=True)
    print_timings(
        "complete",
        {"latencyMs": round(ms, 1), "loadS": round(session.load_seconds or 0, 2)},
        "" if items else " (no suggestion)",
    )
    return 0


async def _chat(args: argparse.Namespace) -> int:
    from lsp_llm.client import ServerSession

    session = ServerSession(settings(args), connect=args.connect, token_file=token_file(args))
    await session.start()
    t0 = time.perf_counter()
    first: list[float] = []

    def on_delta(text: str) -> None:
        if not first:
            first.append((time.perf_counter() - t0) * 1000)
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        context = None
        if args.file:
            path = Path(args.file)
            uri = session.open(path, path.read_text(encoding="utf-8"))
            context = {"uri": uri}
        result = await session.chat([{"role": "user", "content": args.question}], on_delta, context)
    finally:
        await session.close()
    print(flush=True)
    timings = (
        result.timings._asdict() if hasattr(result.timings, "_asdict") else dict(result.timings)
    )
    print_timings(
        "chat",
        {
            **timings,
            "clientFirstDeltaMs": round(first[0], 1) if first else None,
            "finishReason": result.finishReason,
        },
    )
    return 0
