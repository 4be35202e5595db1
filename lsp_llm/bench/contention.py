"""Decoding speed on a machine that is not quiet: ours with libgomp's default spin waits
and with the short ones lsp-llm sets (`lsp_llm/spinwaits.py`), and llama.cpp as its users
run it, each on the same GGUF file (a) alone, (b) next to a busy loop holding one core,
(c) next to a second copy of itself reading the prompt and decoding, round after round (a
second editor window's server). Every figure is a fresh process (the spin count is read
once, when OpenMP loads); the rows of one column are measured back to back under the same
load, so read them against each other.

    python -m lsp_llm.bench.contention FILE.gguf [--threads 2]   (`lsp-llm bench --contention`)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lsp_llm.spinwaits import LIBGOMP_DEFAULT, SPIN_COUNT

MODULE = "lsp_llm.bench.contention"
PROMPT_TOKENS = 200
NEW_TOKENS = 32
ROUNDS = 5
RUNS: dict[str, tuple[str, str]] = {
    "ours, libgomp's spin waits": ("ours", LIBGOMP_DEFAULT),
    "ours, short spin waits (lsp-llm's)": ("ours", SPIN_COUNT),
    "llama.cpp": ("llama.cpp", LIBGOMP_DEFAULT),
}
"""Row name: (engine, GOMP_SPINCOUNT of its process). llama.cpp (built with OpenMP) gets
libgomp's default, as its own users have it."""
LOADS = ("alone", "a busy core", "a second copy")
BUSY_LOOP = "while True: pass"


def _child(engine: str, path: Path, threads: int, rounds: int) -> dict[str, float | str]:
    """Run in a child: median decoding tokens/s of `rounds` runs (0: decode forever)."""
    from lsp_llm.bench.footprint import CONTENDERS, prompt_ids

    contender = CONTENDERS[engine](path, threads)
    ids = prompt_ids(path, PROMPT_TOKENS)
    contender.run(ids, 4)  # warm
    speeds: list[float] = []
    while rounds == 0 or len(speeds) < rounds:
        _, seconds, _ = contender.run(ids, NEW_TOKENS)
        speeds.append(NEW_TOKENS / seconds)
    return {
        "decode_tok_s": statistics.median(speeds),
        "spin_count": os.environ.get("GOMP_SPINCOUNT", ""),
    }


def _command(engine: str, path: Path, threads: int, rounds: int) -> list[str]:
    return [
        sys.executable, "-m", MODULE, str(path), "--threads", str(threads),
        "--child", engine, "--rounds", str(rounds),
    ]  # fmt: skip


@contextmanager
def _load(kind: str, engine: str, spin: str, path: Path, threads: int) -> Iterator[None]:
    """The other work on the machine while a row of `kind`'s column is measured."""
    if kind == "alone":
        yield
        return
    command = (
        [sys.executable, "-c", BUSY_LOOP]
        if kind == "a busy core"
        else _command(engine, path, threads, 0)
    )
    env = {**os.environ, "GOMP_SPINCOUNT": spin}
    with tempfile.TemporaryFile() as log:  # a file: a pipe nobody reads could fill and stop it
        other = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            time.sleep(1.0 if kind == "a busy core" else 8.0)  # a copy loads its model first
            if other.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"contention: the load {kind!r} ended: {log.read()[-2000:]!r}")
            yield
            if other.poll() is not None:  # the figure would be an "alone" one
                log.seek(0)
                raise RuntimeError(f"contention: the load {kind!r} ended: {log.read()[-2000:]!r}")
        finally:
            other.kill()
            other.wait()


def contention(
    path: Path,
    threads: int,
    say: Callable[[str], None],
    loads: tuple[str, ...] = LOADS,
    rounds: int = ROUNDS,
) -> dict[str, Any]:
    """Decoding tokens/s of every row under each of `loads`."""
    report: dict[str, Any] = {
        "file": path.name,
        "threads": threads,
        "prompt_tokens": PROMPT_TOKENS,
        "new_tokens": NEW_TOKENS,
        "rounds": rounds,
        "loads": list(loads),
        "decode_tok_s": {row: {} for row in RUNS},
    }
    for kind in loads:
        for row, (engine, spin) in RUNS.items():
            with _load(kind, engine, spin, path, threads):
                done = subprocess.run(
                    _command(engine, path, threads, rounds),
                    env={**os.environ, "GOMP_SPINCOUNT": spin},
                    capture_output=True,
                    text=True,
                )
            if done.returncode != 0:
                raise RuntimeError(f"contention: {row} failed:\n{done.stderr[-2000:]}")
            got = json.loads(done.stdout.strip().splitlines()[-1])
            if got["spin_count"] != spin:
                raise RuntimeError(f"contention: {row} ran with spin count {got['spin_count']!r}")
            speed = got["decode_tok_s"]
            report["decode_tok_s"][row][kind] = speed
            say(f"contention: {row}, {kind}: {speed:.1f} tok/s")
    return report


def markdown(report: dict[str, Any]) -> str:
    """Rows: engines and spin waits; columns: what else runs; then short / default spins."""
    speeds, loads = report["decode_tok_s"], report["loads"]
    lines = [
        f"Decoding next to other work on {report['file']}, {report['threads']} threads "
        f"({report['new_tokens']} greedy tokens after a {report['prompt_tokens']}-token "
        f"prompt, median of {report['rounds']}; tokens/s, a fresh process each)",
        "",
        "| engine | " + " | ".join(loads) + " |",
        "|---|" + "---:|" * len(loads),
    ]
    for row in RUNS:
        lines.append(f"| {row} | " + " | ".join(f"{speeds[row][k]:.1f}" for k in loads) + " |")
    default, short = list(RUNS)[:2]
    lines.append(
        "| short / libgomp's spin waits | "
        + " | ".join(f"{speeds[short][k] / speeds[default][k]:.2f}x" for k in loads)
        + " |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=("ours", "llama.cpp"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.path, args.threads, args.rounds)))
        return
    report = contention(args.path, args.threads, lambda m: print(m, file=sys.stderr))
    print(markdown(report))


if __name__ == "__main__":
    main()
