"""Arguments and output shared by several subcommands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

Subparsers = argparse._SubParsersAction  # argparse names no public type for it

MODEL_HELP = (
    "a catalogue alias (lsp-llm models), a Hugging Face id, a folder or a .gguf "
    "(default: auto, the best installed model for this hardware)"
)


def model_args(p: argparse.ArgumentParser, device: str) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--draft-model", help="draft model id or folder")
    p.add_argument("--device", default=device)
    p.add_argument(
        "--quantization",
        default="auto",
        choices=["auto", "none", "8bit", "4bit"],
        help="weights as the quantization setting takes them (default: auto, as served)",
    )


def token_file(args: argparse.Namespace) -> Path | None:
    return Path(args.token_file) if args.token_file else None


def backend_args(p: argparse.ArgumentParser, url_help: str, required: bool = False) -> None:
    """`--backend-url` and `--backend-model`: a remote engine (docs/remote-engines.md)."""
    p.add_argument("--backend-url", required=required, help=url_help)
    p.add_argument("--backend-model", help="the model name the engine serves")


def parse_tcp(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("expected HOST:PORT or PORT") from None


def settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = json.loads(args.settings) if args.settings else {}
    if args.model:
        settings["model"] = args.model
    if args.draft_model:
        settings["draftModel"] = args.draft_model
    return settings


def print_timings(label: str, timings: dict[str, Any], extra: str = "") -> None:
    parts = [f"{k}={v}" for k, v in timings.items() if v is not None]
    print(f"[{label}] {' '.join(parts)}{extra}", file=sys.stderr)
