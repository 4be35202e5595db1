"""The `lsp-llm` command: its global options, logging, and the subcommands of
`lsp_llm.commands` (`serve`, `complete`, `chat`, `models`, `eval`, `bench`,
`bench-scale`, `bench-soak`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from lsp_llm import __version__
from lsp_llm.commands import bench, evaluate, models, oneshot, serve

COMMANDS = (serve, oneshot, models, evaluate, bench)
"""Each adds its subparsers and runs the ones it added."""


def _setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )  # never stdout
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    if level != "debug":
        logging.getLogger("pygls").setLevel(logging.WARNING)  # it logs every message at INFO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lsp-llm",
        description="A language server hosting a local code model: inline completions, code "
        "actions and a streamed chat over LSP, and the tools around it.",
    )
    parser.add_argument("--version", action="version", version=f"lsp-llm {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-file", help="log here instead of stderr")
    sub = parser.add_subparsers(dest="command", required=True)
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for command in COMMANDS:
        before = set(sub.choices)
        command.add_parser(sub)
        runners.update({name: command.run for name in set(sub.choices) - before})
    args = parser.parse_args(argv)
    _setup_logging(args.log_level, args.log_file)
    return runners[args.command](args)
