"""`lsp-llm bench` (the engine side by side with transformers and llama.cpp),
`bench-scale` (a daemon in front of a remote engine) and `bench-soak` (a long editing
session; fairness between a daemon's sessions): lsp_llm/bench."""

from __future__ import annotations

import argparse
import logging

from lsp_llm.commands.common import MODEL_HELP, Subparsers, backend_args, model_args


def add_parser(sub: Subparsers) -> None:
    be = sub.add_parser(
        "bench",
        help="time the engine side by side with transformers generate() and llama.cpp",
    )
    model_args(be, device="cpu")
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
    be.add_argument(
        "--footprint-only",
        action="store_true",
        help="for a GGUF model: only start time, memory and speed against llama.cpp on the "
        "same file (a few minutes; the full bench also runs it first)",
    )
    be.add_argument(
        "--editor-only",
        action="store_true",
        help="only the inline suggestions through `lsp-llm serve` (--editor-spots of them, "
        "the model as served in every speculation mode) against llama.cpp on the same file",
    )
    be.add_argument(
        "--contention",
        action="store_true",
        help="for a GGUF model served from its blocks, with llama.cpp: also decoding speed "
        "next to a busy core and next to a second copy, with libgomp's spin waits and "
        "lsp-llm's short ones (a few minutes, after the footprint)",
    )
    sc = sub.add_parser(
        "bench-scale",
        help="latency through a --tcp daemon fronting a remote engine: 1 session vs several",
    )
    backend_args(sc, "the engine's OpenAI-compatible base URL", required=True)
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


def run(args: argparse.Namespace) -> int:
    if args.command == "bench-soak":
        from lsp_llm.bench.soak import main as run_soak

        return run_soak(args)
    if args.command == "bench-scale":
        from lsp_llm.bench.scale import main as run_scale

        return run_scale(args)
    from lsp_llm.bench.run import main as run_bench

    logging.getLogger().setLevel(logging.WARNING)
    return run_bench(args)
