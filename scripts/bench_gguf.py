"""The engine against llama.cpp on one GGUF file, same threads, side by side in one run.

Usage: .venv/bin/python scripts/bench_gguf.py MODEL [--prompt N] [--new N] [--rounds N]
MODEL: a catalogue alias (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2) or a .gguf path.

Prints, for ours (the file served from its blocks) and llama.cpp (llama-cpp-python):
- start: seconds to load, and peak resident memory after reading a prompt and writing
  the tokens (each engine alone in a fresh process, so one's pages do not count for the
  other), beside the file's size;
- speed: prompt reading and decoding tokens/s, the engines alternating round by round on
  the same tokens (medians; the machine is shared, ratios are what to read);
- whether the greedy tokens are the same.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT / "lsp_llm" / "engine" / "leanforward.py"


def resolve(model: str) -> Path:
    from lsp_llm.engine.load import catalogue
    from lsp_llm.engine.load.sources import locate_gguf

    known = catalogue.entry(model)
    found = catalogue.installed_path(known) if known is not None else locate_gguf(model)
    if found is None or not found.is_file():
        sys.exit(f"{model}: not installed (lsp-llm models install {model}) or not a .gguf")
    return found


class Ours:
    def __init__(self, path: Path, threads: int) -> None:
        import torch

        from lsp_llm.config import Settings
        from lsp_llm.engine.load.gguf import described_folder
        from lsp_llm.engine.load.ggufmap import GgufMap
        from lsp_llm.engine.load.ggufmodel import load_gguf_model
        from lsp_llm.engine.load.loading import _tokenizer

        torch.set_num_threads(threads)
        folder = str(described_folder(path, lambda f, m: None))
        self.model = load_gguf_model(GgufMap(path), folder)
        self.tokenizer = _tokenizer(folder, Settings(), "model")

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


ENGINES = {"ours": Ours, "llama.cpp": LlamaCpp}


def prompt_ids(ours: Ours, length: int) -> list[int]:
    ids: list[int] = ours.tokenizer(TEXT.read_text())["input_ids"]
    return ids[:length]


def start_child(engine: str, path: Path, length: int, new: int, threads: int) -> None:
    """One engine alone: load time and peak memory, as JSON on stdout."""
    begin = time.perf_counter()
    loaded = ENGINES[engine](path, threads)
    load_s = time.perf_counter() - begin
    from transformers import AutoTokenizer

    from lsp_llm.engine.load.gguf import described_folder

    tokenizer = AutoTokenizer.from_pretrained(str(described_folder(path, lambda f, m: None)))
    ids = tokenizer(TEXT.read_text())["input_ids"][:length]
    loaded.run(ids, new)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"load_s": load_s, "peak_bytes": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--prompt", type=int, default=767, help="prompt tokens")
    parser.add_argument("--new", type=int, default=32, help="greedy tokens to write")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=sorted(ENGINES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = resolve(args.model)
    if args.child:
        start_child(args.child, path, args.prompt, args.new, args.threads)
        return
    size = path.stat().st_size
    print(f"{path.name}: {size / 1e6:.0f} MB, {args.threads} threads")
    for engine in ENGINES:
        done = subprocess.run(
            [
                sys.executable,
                __file__,
                args.model,
                "--child",
                engine,
                "--prompt",
                str(args.prompt),
                "--new",
                str(args.new),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"start  {engine:9s}  load {got['load_s']:5.1f} s   peak memory "
            f"{got['peak_bytes'] / 1e6:6.0f} MB = {got['peak_bytes'] / size:.2f}x the file"
        )
    engines = {name: make(path, args.threads) for name, make in ENGINES.items()}
    ours = engines["ours"]
    assert isinstance(ours, Ours)
    ids = prompt_ids(ours, args.prompt)
    runs: dict[str, list[tuple[float, float, list[int]]]] = {name: [] for name in engines}
    for _ in range(args.rounds):
        for name, engine in engines.items():
            runs[name].append(engine.run(ids, args.new))
    speed = {}
    for name, got in runs.items():
        prompt = len(ids) / statistics.median(r[0] for r in got)
        decode = args.new / statistics.median(r[1] for r in got)
        speed[name] = (prompt, decode)
        print(f"speed  {name:9s}  prompt {prompt:6.1f} tok/s   decode {decode:5.1f} tok/s")
    (p0, d0), (p1, d1) = speed["ours"], speed["llama.cpp"]
    print(f"ratio  ours / llama.cpp  prompt {p0 / p1:.2f}x   decode {d0 / d1:.2f}x")
    a, b = runs["ours"][0][2], runs["llama.cpp"][0][2]
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))
    print(f"greedy tokens: the first {same} of {len(a)} are llama.cpp's")


if __name__ == "__main__":
    main()
