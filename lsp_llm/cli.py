"""The `lsp-llm` command: `serve` (the language server, stdio by default, `--tcp` for a
shared daemon), one-shot `complete` / `chat` that go through a real server session, and
`eval` (held-out completion quality and speculation figures), `bench` (speed side by side
with transformers and llama.cpp)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from lsp_llm import __version__

MODEL_HELP = (
    "a catalogue alias (lsp-llm models), a Hugging Face id, a folder or a .gguf "
    "(default: auto, the best installed model for this hardware)"
)


def _model_args(p: argparse.ArgumentParser, device: str) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--draft-model", help="draft model id or folder")
    p.add_argument("--device", default=device)
    p.add_argument(
        "--quantization",
        default="auto",
        choices=["auto", "none", "8bit", "4bit"],
        help="weights as the quantization setting takes them (default: auto, as served)",
    )


def _setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )  # never stdout
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    if level != "debug":
        logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO


def _token_file(args: argparse.Namespace) -> Path | None:
    return Path(args.token_file) if args.token_file else None


def _backend_args(p: argparse.ArgumentParser, url_help: str, required: bool = False) -> None:
    """`--backend-url` and `--backend-model`: a remote engine (see the README's "Scale")."""
    p.add_argument("--backend-url", required=required, help=url_help)
    p.add_argument("--backend-model", help="the model name the engine serves")


def _parse_tcp(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("expected HOST:PORT or PORT") from None


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(args.settings) if args.settings else {}
    if args.model:
        settings["model"] = args.model
    if args.draft_model:
        settings["draftModel"] = args.draft_model
    return settings


def _print_timings(label: str, timings: dict[str, Any], extra: str = "") -> None:
    parts = [f"{k}={v}" for k, v in timings.items() if v is not None]
    print(f"[{label}] {' '.join(parts)}{extra}", file=sys.stderr)


async def _complete(args: argparse.Namespace) -> int:
    from lsp_llm.client import ServerSession

    file, line, col = args.location.rsplit(":", 2)
    path = Path(file)
    text = path.read_text(encoding="utf-8")
    session = ServerSession(_settings(args), connect=args.connect, token_file=_token_file(args))
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
    _print_timings(
        "complete",
        {"latencyMs": round(ms, 1), "loadS": round(session.load_seconds or 0, 2)},
        "" if items else " (no suggestion)",
    )
    return 0


async def _chat(args: argparse.Namespace) -> int:
    from lsp_llm.client import ServerSession

    session = ServerSession(_settings(args), connect=args.connect, token_file=_token_file(args))
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
    _print_timings(
        "chat",
        {
            **timings,
            "clientFirstDeltaMs": round(first[0], 1) if first else None,
            "finishReason": result.finishReason,
        },
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lsp-llm", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lsp-llm {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-file", help="log here instead of stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the language server (stdio unless --tcp)")
    serve.add_argument(
        "--tcp",
        type=_parse_tcp,
        metavar="[HOST:]PORT",
        help="listen on TCP instead of stdio (host defaults to 127.0.0.1)",
    )
    _backend_args(
        serve,
        "generate with the OpenAI-compatible engine at this base URL (every session; over "
        "--tcp, clients cannot change it)",
    )
    serve.add_argument(
        "--backend-api-key-env", help="the environment variable holding that engine's API key"
    )
    serve.add_argument(
        "--token-file",
        help="with --tcp: where to write the token clients must send (default "
        "$XDG_RUNTIME_DIR/lsp-llm/tcp-PORT.token, else ~/.cache/lsp-llm/tcp-PORT.token)",
    )
    serve.add_argument(
        "--model",
        help="the model every session starts with (a client may still choose another the "
        "daemon allows)",
    )
    serve.add_argument(
        "--model-dir",
        action="append",
        default=[],
        help="with --tcp: clients may choose models inside this folder (repeatable)",
    )
    serve.add_argument(
        "--allow-model",
        action="append",
        default=[],
        help="with --tcp: clients may choose this model id or path (repeatable)",
    )
    serve.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let models run their own code (over --tcp, only this flag can allow it)",
    )
    serve.add_argument(
        "--allow-pickle-weights",
        action="store_true",
        help="load non-safetensors weights (over --tcp, only this flag can allow it)",
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for local models (0: the physical cores; over --tcp, only this "
        "flag sets it: it is process-wide)",
    )
    serve.add_argument(
        "--compile",
        action="store_true",
        help="on a CPU, compile the decoding step with torch.compile (the `compile` "
        "setting; over --tcp, only this flag can turn it on)",
    )
    serve.add_argument(
        "--stdio",
        action="store_true",
        help="LSP over stdin/stdout (the default; accepted "
        "because clients such as vscode-languageclient pass it)",
    )
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
            type=_parse_tcp,
            metavar="[HOST:]PORT",
            help="use a running `lsp-llm serve --tcp` daemon instead of starting a server",
        )
        p.add_argument(
            "--token-file", help="the daemon's token file (default: where the daemon writes it)"
        )
    ev = sub.add_parser(
        "eval",
        help="score completions on held-out stdlib code against baselines; measure speculation",
    )
    _model_args(ev, device="auto")
    ev.add_argument("--per-kind", type=int, default=60, help="holes of each kind")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--max-new-tokens", type=int, default=96)
    ev.add_argument("--num-tokens", type=int, default=6, help="speculation length")
    ev.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ev.add_argument("--json", help="also write the report here")
    ev.add_argument("--prompt-style", default="auto", choices=["auto", "fim", "prefix", "chat"])
    ev.add_argument(
        "--no-speculation",
        action="store_true",
        help="score quality only (greedy, no speculation modes, no continuations)",
    )
    ev.add_argument(
        "--compare-styles", action="store_true", help="also score the other prompt styles"
    )
    _backend_args(
        ev,
        "score a remote OpenAI-compatible engine at this base URL (--model names the "
        "tokenizer prompts are built with)",
    )
    ev.add_argument(
        "--extra-context",
        type=int,
        default=0,
        metavar="N",
        help="also score N cross-file holes and the usual ones without and with extra "
        "context (other open files, imported modules)",
    )
    ev.add_argument(
        "--ablations",
        action="store_true",
        help="also score with token healing off and with the code below the line unread",
    )
    sc = sub.add_parser(
        "bench-scale",
        help="latency through a --tcp daemon fronting a remote engine: 1 session vs several",
    )
    _backend_args(sc, "the engine's OpenAI-compatible base URL", required=True)
    sc.add_argument("--model", default="smollm2", help="the tokenizer prompts are built with")
    sc.add_argument("--sessions", type=int, default=4)
    sc.add_argument("--requests", type=int, default=12, help="completions per session")
    sc.add_argument("--max-new-tokens", type=int, default=48)
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--out", default="bench-scale", help="folder for scale.json and scale.md")
    so = sub.add_parser(
        "bench-soak",
        help="a long editing session (memory, threads, every request answered) and "
        "completions next to another session's chat in a daemon",
    )
    so.add_argument("--model", help=MODEL_HELP)
    so.add_argument("--minutes", type=float, default=10, help="soak length (0: skip the soak)")
    so.add_argument("--chat-tokens", type=int, default=256, help="chat.maxNewTokens")
    so.add_argument(
        "--fairness-requests",
        type=int,
        default=20,
        help="completions idle and again during chats (0: skip the fairness run)",
    )
    so.add_argument(
        "--chat-lead", type=float, default=3.0, help="seconds a chat runs before completions"
    )
    so.add_argument("--seed", type=int, default=0)
    so.add_argument("--out", default="build/soak", help="folder for soak.json and soak.md")
    be = sub.add_parser(
        "bench",
        help="time the engine side by side with transformers generate() and llama.cpp",
    )
    _model_args(be, device="cpu")
    be.add_argument("--threads", type=int, default=1, help="CPU threads for every contender")
    be.add_argument("--completion-cases", type=int, default=24)
    be.add_argument("--chat-cases", type=int, default=6)
    be.add_argument("--completion-tokens", type=int, default=64)
    be.add_argument("--chat-tokens", type=int, default=128)
    be.add_argument("--num-tokens", type=int, default=6, help="initial speculation length")
    be.add_argument("--seed", type=int, default=0)
    be.add_argument(
        "--formats",
        default="none,8bit,4bit",
        help="weight formats to run the engine in, comma-separated: quantization values, "
        "each optionally with +compile (the compile setting), e.g. none,4bit,4bit+compile",
    )
    be.add_argument(
        "--editor-spots",
        type=int,
        default=12,
        help="inline suggestions through `lsp-llm serve` per weight format and mode, "
        "against llama.cpp (0: skip)",
    )
    be.add_argument("--out", default="build/bench", help="folder for report.json and chart.png")
    be.add_argument("--no-llama-cpp", action="store_true", help="leave llama.cpp out")
    be.add_argument("--no-server", action="store_true", help="skip the protocol overhead run")
    from lsp_llm import models_cli

    models_cli.add_parser(sub)
    args = parser.parse_args(argv)
    _setup_logging(args.log_level, args.log_file)
    if args.command == "models":
        return models_cli.main(args)
    if args.command == "bench-soak":
        from lsp_llm.bench.soak import main as run_soak

        return run_soak(args)
    if args.command == "bench-scale":
        from lsp_llm.bench.scale import main as run_scale

        return run_scale(args)
    if args.command == "bench":
        from lsp_llm.bench.run import main as run_bench

        logging.getLogger().setLevel(logging.WARNING)
        return run_bench(args)
    if args.command == "eval":
        from lsp_llm.evaluation.run import main as run_eval

        logging.getLogger().setLevel(logging.WARNING)
        return run_eval(args)
    if args.command == "serve":
        from lsp_llm.config import parse_settings
        from lsp_llm.server.auth import ModelPolicy
        from lsp_llm.server.main import serve as run

        wire = {"url": args.backend_url, "model": args.backend_model}
        if args.backend_api_key_env:
            wire["apiKeyEnv"] = args.backend_api_key_env
        defaults, errors = parse_settings(
            {
                "model": args.model,
                "backend": wire,
                "trustRemoteCode": args.trust_remote_code,
                "allowPickleWeights": args.allow_pickle_weights,
                "threads": args.threads,
                "compile": args.compile,
            }
        )
        key_env = args.backend_api_key_env
        if key_env and key_env not in os.environ:
            errors.append(f"--backend-api-key-env: {key_env} is not set in this environment")
        if errors:
            print(f"lsp-llm serve: {'; '.join(errors)}", file=sys.stderr)
            return 2
        allowed = (*args.allow_model, *([args.model] if args.model else []))
        policy = ModelPolicy(tuple(Path(d).resolve() for d in args.model_dir), allowed)
        token_file = Path(args.token_file) if args.token_file else None
        return run(args.tcp, defaults, token_file, policy)
    logging.getLogger().setLevel(logging.WARNING)
    runner = _complete if args.command == "complete" else _chat
    try:
        return asyncio.run(runner(args))
    except (RuntimeError, OSError, ValueError) as exc:
        print(f"lsp-llm: {exc}", file=sys.stderr)
        return 1
