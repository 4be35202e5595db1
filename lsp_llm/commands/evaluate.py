"""`lsp-llm eval`: completion quality on held-out code against baselines, and what
speculation does (lsp_llm/evaluation)."""

from __future__ import annotations

import argparse
import logging

from lsp_llm.commands.common import Subparsers, backend_args, model_args


def add_parser(sub: Subparsers) -> None:
    ev = sub.add_parser(
        "eval",
        help="score completions on held-out stdlib code against baselines; measure speculation",
    )
    model_args(ev, device="auto")
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
    backend_args(
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
        "--sources",
        metavar="DIR",
        help="punch the holes in the files under DIR instead of the stdlib's held-out ones: "
        "Python and the brace languages (JavaScript, TypeScript, Go, Rust, Java, C, C++), "
        "scored per language (scripts/eval-sources fetches a slice of each)",
    )
    ev.add_argument(
        "--ablations",
        action="store_true",
        help="also score with token healing off and with the code below the line unread",
    )


def run(args: argparse.Namespace) -> int:
    from lsp_llm.evaluation.run import main as run_eval

    logging.getLogger().setLevel(logging.WARNING)
    return run_eval(args)
