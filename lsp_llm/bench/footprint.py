"""Our engine against llama.cpp on one GGUF file, as a user's machine feels them: start
time and peak memory (each engine alone in a fresh process, so one's pages do not count
for the other), prompt-reading and decoding speed (the two alternating round by round on
the same tokens in one process, medians: the machine is shared, ratios are what to read),
and whether the greedy tokens are the same. The alternating rounds share one OpenMP
runtime, so llama.cpp runs there with lsp-llm's spin waits (`spinwaits.py`; on a quiet
machine they do not change the speed); its process alone has libgomp's default.

Ours is the file served from its blocks (`engine/load/ggufmodel.py`), read by the lean
forward; llama.cpp is llama-cpp-python on the same file with the same threads. The prompt
is the first tokens of one of this package's own modules (code; the same for every run of
one version of lsp-llm).

    python -m lsp_llm.bench.footprint FILE.gguf [--threads 2]   (`lsp-llm bench` runs it)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from lsp_llm.spinwaits import peer_environ

MODULE = "lsp_llm.bench.footprint"
"""This module, run as a child process for each contender alone."""
PROMPT_TEXT = Path(__file__).resolve().parent.parent / "engine" / "leanforward.py"
PROMPT_TOKENS = 767
NEW_TOKENS = 32
ROUNDS = 3


class Contender(Protocol):
    def run(self, ids: list[int], new: int) -> tuple[float, float, list[int]]:
        """Read `ids`, write `new` greedy tokens: (prompt seconds, decode seconds, tokens)."""
        ...


class Ours:
    def __init__(self, path: Path, threads: int) -> None:
        import torch

        from lsp_llm.engine.load.gguf import described_folder
        from lsp_llm.engine.load.ggufmap import GgufMap
        from lsp_llm.engine.load.ggufmodel import load_gguf_model

        torch.set_num_threads(threads)
        folder = str(described_folder(path, lambda f, m: None))
        self.model = load_gguf_model(GgufMap(path), folder)

    def run(self, ids: list[int], new: int) -> tuple[float, float, list[int]]:
        from lsp_llm.engine.leanforward import LeanCache

        cache = LeanCache(self.model, "float")
        start = time.perf_counter()
        logits = cache.forward(ids)
        prompt = time.perf_counter() - start
        out: list[int] = []
        start = time.perf_counter()
        for _ in range(new):
            out.append(int(logits[-1].argmax()))
            logits = cache.forward([out[-1]])
        return prompt, time.perf_counter() - start, out


class LlamaCpp:
    def __init__(self, path: Path, threads: int) -> None:
        import llama_cpp

        self.llm = llama_cpp.Llama(
            str(path), n_ctx=4096, n_threads=threads, n_batch=512, verbose=False
        )

    def run(self, ids: list[int], new: int) -> tuple[float, float, list[int]]:
        import numpy as np

        llm = self.llm
        llm.reset()
        vocab = llm.n_vocab()
        start = time.perf_counter()
        llm.eval(ids)
        prompt = time.perf_counter() - start
        out: list[int] = []
        start = time.perf_counter()
        for _ in range(new):
            row = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(vocab,))
            out.append(int(row.argmax()))
            llm.eval([out[-1]])
        return prompt, time.perf_counter() - start, out


CONTENDERS: dict[str, Callable[[Path, int], Contender]] = {"ours": Ours, "llama.cpp": LlamaCpp}


def prompt_ids(path: Path, length: int) -> list[int]:
    from transformers import AutoTokenizer

    from lsp_llm.engine.load.gguf import described_folder

    tokenizer = AutoTokenizer.from_pretrained(str(described_folder(path, lambda f, m: None)))
    ids: list[int] = tokenizer(PROMPT_TEXT.read_text())["input_ids"]
    return ids[:length]


def _alone(name: str, path: Path, threads: int) -> dict[str, float]:
    """Run in a child process: one contender's load time and peak resident memory."""
    begin = time.perf_counter()
    contender = CONTENDERS[name](path, threads)
    load_s = time.perf_counter() - begin
    contender.run(prompt_ids(path, PROMPT_TOKENS), NEW_TOKENS)
    return {"load_s": load_s, "peak_bytes": peak_resident_bytes()}


def peak_resident_bytes() -> int:
    """This process's peak resident memory. On Linux its own address space's high-water
    mark (`VmHWM`): `ru_maxrss` also counts the parent's memory at the fork before exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource  # POSIX; kilobytes on Linux, bytes on macOS

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak * (1 if sys.platform == "darwin" else 1024)


def footprint(path: Path, threads: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Start, memory, speed and greedy agreement of ours and llama.cpp on `path`."""
    size = path.stat().st_size
    report: dict[str, Any] = {
        "file": path.name,
        "file_bytes": size,
        "threads": threads,
        "prompt_tokens": PROMPT_TOKENS,
        "new_tokens": NEW_TOKENS,
        "rounds": ROUNDS,
        "start": {},
        "speed": {},
    }
    for name in CONTENDERS:
        done = subprocess.run(
            [sys.executable, "-m", MODULE, str(path), "--threads", str(threads), "--alone", name],
            capture_output=True,
            text=True,
            env=peer_environ() if name == "llama.cpp" else None,
        )
        if done.returncode != 0:
            raise RuntimeError(f"footprint: {name} alone failed:\n{done.stderr[-2000:]}")
        report["start"][name] = json.loads(done.stdout.strip().splitlines()[-1])
        say(f"footprint: {name} alone {report['start'][name]}")
    contenders = {name: make(path, threads) for name, make in CONTENDERS.items()}
    ids = prompt_ids(path, PROMPT_TOKENS)
    runs: dict[str, list[tuple[float, float, list[int]]]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, contender in contenders.items():
            runs[name].append(contender.run(ids, NEW_TOKENS))
    for name, got in runs.items():
        report["speed"][name] = {
            "prompt_tok_s": len(ids) / statistics.median(r[0] for r in got),
            "decode_tok_s": NEW_TOKENS / statistics.median(r[1] for r in got),
        }
    ours, theirs = runs["ours"][0][2], runs["llama.cpp"][0][2]
    report["greedy_same"] = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b), len(ours)
    )
    return report


def markdown(report: dict[str, Any]) -> str:
    """The footprint as a table: a row per contender, then ours / llama.cpp."""
    size = report["file_bytes"]
    lines = [
        f"Footprint on {report['file']} ({size / 1e6:,.0f} MB), {report['threads']} threads: "
        f"a {report['prompt_tokens']}-token prompt and {report['new_tokens']} greedy tokens "
        f"(speed: medians of {report['rounds']} alternating rounds; load and memory: each "
        "alone in a fresh process, Python and its libraries included)",
        "",
        "| engine | prompt tok/s | decode tok/s | load s | peak memory | × file |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in CONTENDERS:
        speed, start = report["speed"][name], report["start"][name]
        lines.append(
            f"| {name} | {speed['prompt_tok_s']:.1f} | {speed['decode_tok_s']:.1f} | "
            f"{start['load_s']:.1f} | {start['peak_bytes'] / 1e6:,.0f} MB | "
            f"{start['peak_bytes'] / size:.2f}x |"
        )
    ours, theirs = report["speed"]["ours"], report["speed"]["llama.cpp"]
    lines.append(
        f"| ours / llama.cpp | {ours['prompt_tok_s'] / theirs['prompt_tok_s']:.2f}x | "
        f"{ours['decode_tok_s'] / theirs['decode_tok_s']:.2f}x | | | |"
    )
    lines += [
        "",
        f"Greedy tokens: the first {report['greedy_same']} of {report['new_tokens']} are "
        "llama.cpp's.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--alone", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.alone:
        print(json.dumps(_alone(args.alone, args.path, args.threads)))
        return
    report = footprint(args.path, args.threads, lambda m: print(m, file=sys.stderr))
    print(markdown(report))


if __name__ == "__main__":
    main()
