"""The GPU check (`scripts/gpu-check`): on a CUDA machine, in a few minutes and offline, the
test suite's CUDA tests, then the Qwen2.5-Coder shapes (random weights, `shapes.py`) in
bfloat16, 8-bit and 4-bit NF4 through the product's own loading and engine (load time,
memory, prompt reading, decoding, a suggestion through `lsp-llm serve` after a typed
character), the 1.5B's pass costs next to its 0.5B draft's, CUDA graphs for the decoding
step, and the bundled model's greedy text on the GPU against the CPU's. Writes
`gpu-check.json` and `gpu-check.md`.

Every part also runs on a CPU (as CI runs it, with `--layers 1`): the figures then describe
the CPU and say so; the CUDA-only parts are reported as skipped, with the reason.

    python -m lsp_llm.bench.gpucheck [--out DIR] [--device auto|cuda|cpu] [--models ...]
                                     [--weights bf16,8bit,4bit] [--layers N] [--no-tests]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import sysconfig
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import replace
from pathlib import Path
from typing import Any

from lsp_llm.bench.shapes import SHAPES, Shape, build_shape_model
from lsp_llm.engine.load.catalogue import QWEN_05B, QWEN_15B

WEIGHTS = {"bf16": "none", "8bit": "8bit", "4bit": "4bit"}
"""The report's names of the weight formats -> the `quantization` setting that loads them
(on a CPU, `none` is float32)."""

CPU_TOKENS_PER_PASS = 4.34
"""Tokens per target pass of the 1.5B with the 0.5B drafting 6, on the bench's code
continuations with the real weights (docs/performance.md, "Speculation on the Qwen pair"):
random weights agree on nothing, so the projection of a draft's speed-up on the GPU takes
the acceptance from there."""

DRAFTED = 6


def _say(message: str) -> None:
    print(f"gpu-check: {message}", file=sys.stderr, flush=True)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_description(device: str) -> dict[str, Any]:
    import torch
    import transformers

    described: dict[str, Any] = {
        "device": device,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
    }
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        described["gpu"] = props.name
        described["gpu_memory_gb"] = round(props.total_memory / 1024**3, 1)
        described["cuda"] = torch.version.cuda
    try:
        import bitsandbytes

        described["bitsandbytes"] = bitsandbytes.__version__
    except Exception as exc:  # not installed, or no library for this CUDA
        described["bitsandbytes"] = f"unavailable: {type(exc).__name__}: {exc}"[:200]
    return described


# --- the CUDA-marked tests ---------------------------------------------------------------


def run_tests(root: Path, out: Path) -> dict[str, Any]:
    """The CUDA tests (`tests/test_cuda.py`) in a child process: counts and failures."""
    xml = out / "cuda-tests.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "cuda",
        "tests/test_cuda.py",
        f"--junitxml={xml}",
    ]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=420)
    except subprocess.TimeoutExpired as exc:
        return {"error": f"the CUDA tests ran past {exc.timeout:.0f} s"}
    result: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 1), "rc": done.returncode}
    if not xml.exists():
        result["error"] = (done.stdout + done.stderr)[-2000:]
        return result
    suite = ElementTree.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    result.update({k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")})
    result["failed"] = [
        f"{case.get('name')}: {(problem.get('message') or '')[:300]}"
        for case in suite.iter("testcase")
        for problem in case
        if problem.tag in ("failure", "error")
    ]
    skips = {
        (problem.get("message") or "")[:120]
        for case in suite.iter("testcase")
        for problem in case
        if problem.tag == "skipped"
    }
    result["skip_reasons"] = sorted(skips)
    return result


# --- a shape in each weight format ----------------------------------------------------------


def _prompt_ids(tokenizer: Any, count: int, seed: int = 0) -> tuple[int, ...]:
    """`count` tokens of this Python's own standard library (code, as an editor sends)."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = "".join((stdlib / name).read_text() for name in ("textwrap.py", "difflib.py"))
    ids = tokenizer.encode(text, add_special_tokens=False)
    start = random.Random(seed).randrange(0, max(1, len(ids) - count))
    return tuple(ids[start : start + count])


def _memory_gb(device: str, peak: bool = True) -> float | None:
    """GPU memory held now (the weights, after a load) or at most since the last reset."""
    import torch

    if not device.startswith("cuda"):
        return None
    where = torch.device(device)
    held = torch.cuda.max_memory_allocated(where) if peak else torch.cuda.memory_allocated(where)
    return round(held / 1024**3, 2)


def _reset_memory(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def engine_figures(
    folder: Path, device: str, quantization: str, prompt_tokens: int, decode_tokens: int
) -> dict[str, Any]:
    """Load `folder` as the server does and time a cold prompt and greedy decoding through
    the engine's inference thread (the better of two runs: the first warms the device)."""
    from lsp_llm.bench.cases import Case
    from lsp_llm.bench.runners import engine_runner
    from lsp_llm.config import Settings
    from lsp_llm.engine.load.loading import load
    from lsp_llm.engine.local import LocalBackend
    from lsp_llm.engine.worker import Engine

    _reset_memory(device)
    t0 = time.perf_counter()
    loaded = load(Settings(model=str(folder), device=device, quantization=quantization))  # type: ignore[arg-type]
    _sync(device)
    load_s = time.perf_counter() - t0
    weights_gb = _memory_gb(device, peak=False)
    backend = LocalBackend(Engine(loaded))
    try:
        ids = _prompt_ids(loaded.tokenizer, prompt_tokens)
        run = engine_runner(backend, "off", DRAFTED)
        samples = [run(Case("completion", "prompt", ids, decode_tokens)) for _ in range(2)]
    finally:
        backend.close()
    best = min(samples, key=lambda s: s.total_s)
    steps = max(1, len(best.tokens) - 1)
    figures = {
        "quantization": loaded.quantization,
        "dtype": loaded.dtype,
        "load_s": round(load_s, 2),
        "weights_gb": weights_gb,
        "peak_gb": _memory_gb(device),
        "prompt_tokens": len(ids),
        "prompt_tok_s": round(len(ids) / best.ttft_s, 1),
        "decode_ms_per_token": round((best.total_s - best.ttft_s) * 1000 / steps, 2),
        "decoded": len(best.tokens),
    }
    del loaded, backend
    _reset_memory(device)
    return figures


async def _served_suggestion(
    folder: Path, device: str, quantization: str, workdir: Path, count: int = 3
) -> dict[str, Any]:
    """Through `lsp-llm serve` over stdio, at the bench's held-out spots (`editor.spots`):
    the document opened and a suggestion asked for, then a character typed and the second
    suggestion timed."""
    from lsp_llm.bench.editor import spots
    from lsp_llm.client import ServerSession
    from lsp_llm.train.data import load_sources

    sources = [(s.path, s.text) for s in load_sources(held_out=True)]
    session = ServerSession(
        {
            "model": str(folder),
            "device": device,
            "quantization": quantization,
            "completion": {"maxNewTokens": 16, "multiline": "never"},
            "speculation": {"mode": "off"},
        }
    )
    await session.start()
    times: list[float] = []
    lengths: list[int] = []
    try:
        for i, spot in enumerate(spots(sources, count)):
            first = session.open(workdir / f"spot{i}a.py", spot.first)
            await session.inline(first, spot.line, spot.first_column)
            second = session.open(workdir / f"spot{i}b.py", spot.second)
            t0 = time.perf_counter()
            result = await session.inline(second, spot.line, spot.first_column + 1)
            times.append((time.perf_counter() - t0) * 1000)
            items = result.items if result is not None else []
            lengths.append(len(items[0].insert_text) if items else 0)
    finally:
        await session.close()
    return {
        "served_ms_median": round(statistics.median(times), 1),
        "served_ms": [round(t, 1) for t in times],
        "served_chars": lengths,
    }


def shape_figures(
    name: str,
    shape: Shape,
    device: str,
    weights: list[str],
    workdir: Path,
    prompt_tokens: int,
    decode_tokens: int,
) -> tuple[Path, dict[str, Any]]:
    """One shape in each weight format: its folder (kept for the draft figures) and rows."""
    folder = workdir / name
    t0 = time.perf_counter()
    build_shape_model(shape, folder, device)
    _say(f"{name}: random weights of its shape written in {time.perf_counter() - t0:.0f}s")
    rows: dict[str, Any] = {}
    for fmt in weights:
        quantization = WEIGHTS[fmt]
        if fmt != "bf16" and not device.startswith("cuda"):
            rows[fmt] = {"skipped": "bitsandbytes weights are measured on CUDA only"}
            continue
        try:
            row = engine_figures(folder, device, quantization, prompt_tokens, decode_tokens)
            row.update(
                asyncio.run(_served_suggestion(folder, device, quantization, workdir / "docs"))
            )
        except Exception as exc:  # one format failing (a missing library) leaves the others
            row = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        rows[fmt] = row
        _say(f"{name} {fmt}: {json.dumps(row)}")
    return folder, rows


def _model_on(folder: Path, dtype: Any, device: str) -> Any:
    """A model folder straight through transformers (no engine), on `device`."""
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    return model.to(device).eval()


# --- the draft's cost against its target's ---------------------------------------------------


def pass_costs(target: Path, draft: Path, device: str, prompt_tokens: int) -> dict[str, Any]:
    """Milliseconds of one decoding step of each model and of the target's verify pass over
    `DRAFTED + 1` tokens, after a prompt, through the engine's own cache and forward pass
    (`kvcache.cache_for`) in the weights a user on this device gets (16 bits on CUDA); and
    the speed-up a draft would give at the acceptance measured on the CPU."""
    import torch

    from lsp_llm.engine.kvcache import cache_for

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    models = {
        role: _model_on(path, dtype, device)
        for role, path in (("target", target), ("draft", draft))
    }
    vocab = int(models["target"].config.vocab_size)
    prompt = [100 + i % (vocab - 100) for i in range(prompt_tokens)]

    def timed(model: Any, width: int, repeats: int = 10) -> float:
        cache = cache_for(model)
        step = prompt[:width]

        def one() -> None:
            rows = cache.forward_rows(step, width)
            rows[0]  # a verify pass reads at least its first row
            cache.crop(prompt_tokens)

        with torch.inference_mode():
            cache.forward(prompt)
            for _ in range(2):  # warm
                one()
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(repeats):
                one()
            _sync(device)
        return (time.perf_counter() - t0) * 1000 / repeats

    step = timed(models["target"], 1)
    verify = timed(models["target"], DRAFTED + 1)
    draft_step = timed(models["draft"], 1)
    del models
    _reset_memory(device)
    cost = verify + DRAFTED * draft_step  # one round: the draft's steps, then one verify
    return {
        "target_step_ms": round(step, 2),
        "target_verify_ms": round(verify, 2),
        "draft_step_ms": round(draft_step, 2),
        "verify_over_step": round(verify / step, 2),
        "draft_over_target_step": round(draft_step / step, 3),
        "drafted": DRAFTED,
        "cpu_tokens_per_pass": CPU_TOKENS_PER_PASS,
        "projected_speedup": round(CPU_TOKENS_PER_PASS * step / cost, 2),
    }


# --- CUDA graphs for the decoding step -------------------------------------------------------


def cuda_graphs(folder: Path, device: str, prompt_tokens: int, tokens: int = 64) -> dict[str, Any]:
    """transformers' `generate` with a dynamic cache against one static cache, with which
    transformers compiles the decoding step (`torch.compile`, mode reduce-overhead: CUDA
    graphs): ms per token, the prompt's pass taken out. Informational: a compile that fails
    (no C compiler for Triton, say) is reported, not counted as a problem."""
    if not device.startswith("cuda"):
        return {"skipped": "CUDA graphs exist on CUDA only"}
    import torch
    from transformers import StaticCache

    model = _model_on(folder, torch.bfloat16, device)
    vocab = int(model.config.vocab_size)
    ids = (torch.arange(prompt_tokens, device=device) % (vocab - 100) + 100).view(1, -1)
    static = StaticCache(config=model.config, max_cache_len=prompt_tokens + tokens + 8)

    def run(new: int, cache: Any) -> float:
        if cache is not None:
            cache.reset()
        _sync(device)
        t0 = time.perf_counter()
        model.generate(
            ids,
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            past_key_values=cache,
        )
        _sync(device)
        return time.perf_counter() - t0

    def per_token(cache: Any) -> float:
        for _ in range(2):  # warm: compiles and records the graphs on the first calls
            run(tokens, cache)
        long, short = run(tokens, cache), run(4, cache)
        return (long - short) * 1000 / (tokens - 4)

    result: dict[str, Any] = {"eager_ms_per_token": round(per_token(None), 2)}
    try:
        graphs = per_token(static)
        result["compiled"] = getattr(model, "_compiled_call", None) is not None
        result["graphs_ms_per_token"] = round(graphs, 2)
        result["speedup"] = round(result["eager_ms_per_token"] / graphs, 2)
    except Exception as exc:
        result["graphs_error"] = f"{type(exc).__name__}: {exc}"[:500]
    model = None  # the GPU memory goes back before the next part
    _reset_memory(device)
    return result


# --- the same greedy text on the GPU as on the CPU -------------------------------------------


def greedy_parity(device: str, tokens: int = 48) -> dict[str, Any]:
    """The bundled model (real tokens) greedy through the engine in float32 on the CPU and
    on `device`: the same ids, or where they part."""
    from lsp_llm.config import Settings
    from lsp_llm.engine.load.bundled import bundled_model_dir
    from lsp_llm.engine.load.loading import load
    from lsp_llm.engine.local import LocalBackend
    from lsp_llm.engine.worker import Engine
    from lsp_llm.generation.types import GenerationRequest, Speculation, StopRules

    if not device.startswith("cuda"):
        return {"skipped": "the CPU is the reference"}
    out: dict[str, tuple[int, ...]] = {}
    text = ""
    for where in ("cpu", device):
        settings = Settings(
            model=str(bundled_model_dir()), device=where, dtype="float32", quantization="none"
        )
        backend = LocalBackend(Engine(replace(load(settings), draft_model=None, draft_name=None)))
        try:
            ids = _prompt_ids(backend.engine.loaded.tokenizer, 200, seed=3)
            done = backend.generate(
                GenerationRequest(ids, tokens, stop=StopRules(), speculation=Speculation("off"))
            )
        finally:
            backend.close()
        out[where] = done.token_ids
        text = text or done.text
    cpu, gpu = out["cpu"], out[device]
    parted = next((i for i, (a, b) in enumerate(zip(cpu, gpu, strict=False)) if a != b), None)
    return {
        "tokens": len(cpu),
        "identical": cpu == gpu,
        "first_difference": parted,
        "cpu_text": text[:120],
    }


# --- the report ------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    d = report["machine"]
    where = d.get("gpu") or "CPU (no CUDA device)"
    lines = [
        f"GPU check on {where}: torch {d['torch']}, transformers {d['transformers']}, "
        f"bitsandbytes {d['bitsandbytes']}.",
        "Qwen2.5-Coder **shapes with random weights** (real weights do not travel to the GPU "
        "machine); the bundled tokenizer; greedy, speculation off.",
        "",
        "| model | weights | load s | memory GB | prompt tok/s | decode ms/token "
        "| suggestion after a keystroke, ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, rows in report["shapes"].items():
        for fmt, row in rows.items():
            if "skipped" in row or "error" in row:
                lines.append(f"| {name} | {fmt} | {row.get('skipped') or row.get('error')} |||||")
                continue
            lines.append(
                f"| {name} | {fmt} | {row['load_s']:.1f} | {row['weights_gb'] or '-'} "
                f"| {row['prompt_tok_s']:,.0f} | {row['decode_ms_per_token']:.1f} "
                f"| {row['served_ms_median']:,.0f} |"
            )
    costs = report.get("pass_costs")
    if costs and "target_step_ms" in costs:
        lines += [
            "",
            f"Draft: a 1.5B step {costs['target_step_ms']} ms, its verify pass over "
            f"{costs['drafted'] + 1} tokens {costs['target_verify_ms']} ms "
            f"({costs['verify_over_step']}x a step), a 0.5B step {costs['draft_step_ms']} ms "
            f"({costs['draft_over_target_step']}x); at the CPU's {costs['cpu_tokens_per_pass']} "
            f"tokens per pass that projects {costs['projected_speedup']}x.",
        ]
    graphs = report.get("cuda_graphs", {})
    if "eager_ms_per_token" in graphs:
        lines.append(
            f"CUDA graphs (static cache, compiled step; compiled: {graphs.get('compiled', '-')}): "
            f"{graphs.get('graphs_ms_per_token', '-')} "
            f"ms per token against {graphs['eager_ms_per_token']} eager "
            f"({graphs.get('speedup', graphs.get('graphs_error', ''))})."
        )
    parity = report.get("parity", {})
    if "identical" in parity:
        lines.append(
            f"Greedy text of the bundled model, float32: {parity['tokens']} tokens, "
            + (
                "identical to the CPU's."
                if parity["identical"]
                else f"parts from the CPU's at token {parity['first_difference']}."
            )
        )
    tests = report.get("tests", {})
    if "tests" in tests:
        lines.append(
            f"CUDA tests: {tests['tests']} run, {tests['failures'] + tests['errors']} failed, "
            f"{tests['skipped']} skipped"
            + (f" ({'; '.join(tests['skip_reasons'])})" if tests["skipped"] else "")
            + "."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/gpu-check"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", default=f"{QWEN_05B},{QWEN_15B}")
    parser.add_argument("--weights", default=",".join(WEIGHTS))
    parser.add_argument("--layers", type=int, default=None, help="fewer layers (a quick run)")
    parser.add_argument("--vocab", type=int, default=None, help="a smaller vocabulary (quick)")
    parser.add_argument("--prompt-tokens", type=int, default=1500)
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--no-tests", action="store_true")
    args = parser.parse_args(argv)

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    work = out / "models"
    report: dict[str, Any] = {"machine": device_description(device), "shapes": {}}
    _say(json.dumps(report["machine"]))
    root = Path(__file__).resolve().parents[2]
    if not args.no_tests:
        report["tests"] = run_tests(root, out)
        _say(f"tests: {json.dumps(report['tests'])[:600]}")
    folders: dict[str, Path] = {}
    for name in args.models.split(","):
        shape = SHAPES[name]
        if args.layers:
            shape = replace(shape, layers=args.layers)
        if args.vocab:
            shape = replace(shape, vocab=args.vocab)
        folders[name], report["shapes"][name] = shape_figures(
            name,
            shape,
            device,
            args.weights.split(","),
            work,
            args.prompt_tokens,
            args.decode_tokens,
        )
        _save(report, out)
    if QWEN_05B in folders and QWEN_15B in folders:
        report["pass_costs"] = _guarded(
            pass_costs, folders[QWEN_15B], folders[QWEN_05B], device, args.prompt_tokens
        )
        _say(f"pass costs: {report['pass_costs']}")
    big = folders.get(QWEN_15B) or next(iter(folders.values()))
    report["cuda_graphs"] = _guarded(cuda_graphs, big, device, args.prompt_tokens)
    report["parity"] = _guarded(greedy_parity, device)
    report["problems"] = problems(report)
    _save(report, out)
    print(markdown(report), file=sys.stderr)
    for problem in report["problems"]:
        _say(f"problem: {problem}")
    return 1 if report["problems"] else 0


def problems(report: dict[str, Any]) -> list[str]:
    """What went wrong (the exit status is 1 when anything did): failed tests, a part or
    a weight format that raised, greedy text that differs from the CPU's."""
    found = []
    tests = report.get("tests", {})
    if "error" in tests or tests.get("failures") or tests.get("errors"):
        found.append(f"CUDA tests: {tests.get('failed') or tests.get('error')}")
    for name, rows in report["shapes"].items():
        found += [f"{name} {fmt}: {row['error']}" for fmt, row in rows.items() if "error" in row]
    for part in ("pass_costs", "cuda_graphs", "parity"):
        if "error" in report.get(part, {}):
            found.append(f"{part}: {report[part]['error']}")
    if report.get("parity", {}).get("identical") is False:
        found.append("greedy text on the GPU differs from the CPU's")
    return found


def _guarded(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        result: dict[str, Any] = fn(*args)
        return result
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:500]}


def _save(report: dict[str, Any], out: Path) -> None:
    (out / "gpu-check.json").write_text(json.dumps(report, indent=1))
    (out / "gpu-check.md").write_text(markdown(report))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
