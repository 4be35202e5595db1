"""Run the benchmark: every contender on the same prompts, interleaved prompt by prompt
(each prompt in a rotated order, so drift on a shared machine hits all alike), then the
latency probes and inline suggestions through `lsp-llm serve` against llama.cpp; print
Markdown, write `report.json` and `chart.png`.

    lsp-llm bench [--model smollm2] [--threads 1] [--out build/bench] [--no-llama-cpp]
                  [--no-server] [--formats none,8bit,4bit,4bit+compile] [--editor-spots 12]
                  [--footprint-only | --editor-only]

Our engine runs once per weight format (`quantization` on a CPU: float32, int8, int4;
`+compile`: with the `compile` setting, `formats.py`) and speculation mode. llama.cpp
runs the model's own GGUF file when it has one (SmolLM2's Q4_1) and an f16 rewrite of it,
else a GGUF converted from the folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from lsp_llm.bench.cases import Case, chat_cases, completion_cases
from lsp_llm.bench.editor import ServedConfig, editor_latency, spots
from lsp_llm.bench.formats import AS_SERVED, label, split, weight_formats
from lsp_llm.bench.latency import cancel_latency, edit_document, edit_reuse, protocol_overhead
from lsp_llm.bench.report import BASELINE, ModeTally, chart, markdown, targets, with_ratios
from lsp_llm.bench.runners import Runner, Sample, engine_runner, hf_runner, llama_cpp_runner
from lsp_llm.config import Settings, SpeculationSettings
from lsp_llm.engine.load.loading import resolve_device, serves_blocks
from lsp_llm.engine.load.sources import resolve_source
from lsp_llm.generation.backend import Backend
from lsp_llm.generation.tokens import FimOrder, TokenizerInfo
from lsp_llm.generation.types import SpeculationMode


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def gguf_footprint(path: Path, args: Any, say: Callable[[str], None]) -> dict[str, Any] | None:
    """Ours against llama.cpp on the file itself (`footprint.py`), unless llama.cpp is out."""
    if args.no_llama_cpp or importlib.util.find_spec("llama_cpp") is None:
        say(
            "footprint (and --contention) left out: llama.cpp is not installed "
            "(scripts/bench) or left out"
        )
        return None
    from lsp_llm.bench.footprint import footprint

    t0 = time.perf_counter()
    report = footprint(path, args.threads, say)
    say(f"footprint against llama.cpp in {time.perf_counter() - t0:.0f}s")
    if args.contention:
        from lsp_llm.bench.contention import contention

        t0 = time.perf_counter()
        report["contention"] = contention(path, args.threads, say)
        say(f"decoding next to other work in {time.perf_counter() - t0:.0f}s")
    return report


def llama_models(source: Any, out: Path, rewrite: bool = True) -> dict[str, str]:
    """The GGUF files llama.cpp runs, by row name: the model's own file and (`rewrite`: our
    engine runs float weights too) an f16 rewrite of it, or (a folder model) an f32
    conversion."""
    from lsp_llm.bench.gguf import convert, requantize

    if source.gguf is not None and not rewrite:
        _say(f"llama.cpp runs {source.gguf}")
        return {"llama.cpp file": str(source.gguf)}
    if source.gguf is not None:
        kind = Path(source.gguf).stem.rsplit(".", 1)[-1]
        label = kind if kind.upper() == kind and any(c.isdigit() for c in kind) else "file"
        _say(f"llama.cpp runs {source.gguf} and an f16 rewrite of it")
        f16 = requantize(Path(source.gguf), out / f"{Path(source.gguf).stem}-f16.gguf")
        return {f"llama.cpp {label}": str(source.gguf), "llama.cpp f16": str(f16)}
    folder = Path(source.folder)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(source.folder, local_files_only=True))
    _say(f"converting {folder} to GGUF (f32) for llama.cpp")
    return {"llama.cpp": str(convert(folder, out / "model-f32.gguf", out / "cache"))}


def side_by_side(runners: dict[str, Runner], cases: list[Case]) -> dict[str, dict[str, Any]]:
    names = list(runners)
    for name in names:  # warm-up, discarded
        runners[name](cases[0])
    samples: dict[str, list[Sample]] = {n: [] for n in names}
    for i, case in enumerate(cases):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            samples[name].append(runners[name](case))
    tallies = {n: ModeTally() for n in names}
    for name in names:
        for sample, ref in zip(samples[name], samples[BASELINE], strict=True):
            tallies[name].add(sample, ref.tokens)
    return with_ratios({n: t.summary() for n, t in tallies.items()})


def edit_probes(
    engine: Backend, loaded: Any, settings: Settings, document: str, cursors: list[int]
) -> dict[str, dict[str, Any]]:
    """The one-line-edit probe in the model's own window and, when that is smaller than the
    default budget, in the default 1,536-token window (speed only). In the FIM order the
    server uses for this model; when that is SPM, PSM too for comparison."""
    window = TokenizerInfo.of(loaded)
    c = settings.completion
    infos = {f"{window.budget(c.context_tokens, c.max_new_tokens)}-token window": window}
    if (
        loaded.context_window is not None
        and loaded.context_window < settings.completion.context_tokens
    ):
        label = (
            f"{settings.completion.context_tokens}-token window, past the model's "
            f"{loaded.context_window} (speed only)"
        )
        infos[label] = TokenizerInfo(loaded.tokenizer, None, loaded.trained_spm)
    used = window.fim_order(settings.completion.fim_order)
    orders: list[FimOrder] = [used] if used == "psm" else [used, "psm"]
    out: dict[str, dict[str, Any]] = {}
    for label, info in infos.items():
        for order in orders:
            ordered = replace(settings, completion=replace(settings.completion, fim_order=order))
            probe = edit_reuse(engine, info, ordered, document, cursors)
            probe["served"] = order == used
            out[f"{label}, {order.upper()}"] = probe
    return out


def main(args: Any) -> int:
    import torch
    import transformers

    from lsp_llm.engine.load.loading import load
    from lsp_llm.train.data import load_sources

    torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    settings = Settings(
        model=args.model or "bundled",  # the bench's default is the bundled pair
        draft_model=args.draft_model,
        device=args.device,
        quantization=args.quantization,
        threads=args.threads,
        speculation=SpeculationSettings(num_tokens=args.num_tokens),
    )
    out = Path(args.out)
    blocks = serves_blocks(settings, resolve_device(settings.device))
    # a GGUF served from its blocks needs no float32 copy (resolving it would make one)
    source = resolve_source(settings.model, lambda f, m: None, weights=not blocks)
    if args.editor_only:
        return _editor_only(args, settings, source, out)
    footprint = None
    if source.gguf is not None and blocks:
        from lsp_llm.engine.load.ggufmap import GgufMap
        from lsp_llm.engine.load.ggufmodel import unsupported

        why = unsupported(GgufMap(Path(source.gguf)))
        if why is None:
            footprint = gguf_footprint(Path(source.gguf), args, _say)
        else:
            _say(f"footprint left out: the file is converted, not served from its blocks ({why})")
    if args.footprint_only:
        if footprint is None:
            _say(
                "--footprint-only: the model must be a GGUF served from its blocks, with llama.cpp"
            )
            return 2
        report_only = {"model": source.name, "footprint": footprint, "modes": {}, "targets": []}
        _save(report_only, out)
        return 0
    loaded = load(settings)  # the weights, for generate() beside our engine
    formats = weight_formats(args.formats, loaded)
    engines = _serving_engines(loaded, formats)
    engine = engines.get(loaded.quantization) or next(iter(engines.values()))
    info = engine.tokens
    sources = [(s.path, s.text) for s in load_sources(held_out=True)]
    cases = {
        "completion": completion_cases(
            info, settings, sources, args.completion_cases, args.completion_tokens, args.seed
        ),
        "chat": chat_cases(info, settings, sources, args.chat_cases, args.chat_tokens, args.seed),
    }
    n = args.num_tokens
    runners: dict[str, Runner] = {BASELINE: hf_runner(loaded.model, None, "plain", n)}
    notes: list[str] = []
    if loaded.draft_model is not None and loaded.draft_vocab is None:
        runners["generate() assisted"] = hf_runner(loaded.model, loaded.draft_model, "assisted", n)
    elif loaded.draft_model is not None:
        notes.append(
            "generate() assisted left out: the draft reads its own vocabulary "
            "(draft_vocab.json), which transformers' assisted decoding cannot map"
        )
        _say(notes[-1])
    runners["generate() prompt lookup"] = hf_runner(loaded.model, None, "promptLookup", n)
    modes = _speculation_modes(loaded)
    for fmt in formats:
        for mode in modes:
            runners[f"engine {label(fmt)}{mode}"] = engine_runner(engines[fmt], mode, n)
    ggufs: dict[str, str] = {}
    if not args.no_llama_cpp:
        try:
            import llama_cpp  # noqa: F401

            ggufs = llama_models(source, out, rewrite=formats != [AS_SERVED])
            longest = max(len(c.prompt_ids) + c.max_new_tokens for cs in cases.values() for c in cs)
            n_ctx = max(512, longest + 16)
            for i, (name, gguf) in enumerate(ggufs.items()):
                runners[name] = llama_cpp_runner(gguf, args.threads, n_ctx)
                if i == 0:
                    runners[f"{name} prompt lookup"] = llama_cpp_runner(
                        gguf, args.threads, n_ctx, n
                    )
        except ImportError:
            notes.append("llama.cpp left out: llama-cpp-python is not installed (scripts/bench)")
            _say(notes[-1])
    report: dict[str, Any] = {
        **_described(loaded, formats),
        "cases": {k: len(v) for k, v in cases.items()},
        "tokens": {"completion": args.completion_tokens, "chat": args.chat_tokens},
        "notes": notes,
        "modes": {},
    }
    if footprint is not None:
        report["footprint"] = footprint
    try:
        for kind, kind_cases in cases.items():
            if not kind_cases:  # --chat-cases 0, say
                continue
            t0 = time.perf_counter()
            report["modes"][kind] = side_by_side(runners, kind_cases)
            _say(
                f"{kind}: {len(kind_cases)} prompts x {len(runners)} modes in "
                f"{time.perf_counter() - t0:.0f}s"
            )
            _checkpoint(report, out)
        report["cancel"] = cancel_latency(engine, (cases["chat"] or cases["completion"])[0])
        document, cursors = edit_document(sources, args.seed)
        report["edit"] = edit_probes(engine, loaded, settings, document, cursors)
        _say("cancel and edit probes done")
        if not args.no_server:
            report["protocol"] = asyncio.run(
                protocol_overhead(engine, info, settings, document, cursors, 5, args.threads, out)
            )
            _say("protocol overhead done")
        _checkpoint(report, out)
        if not args.no_server and args.editor_spots:
            configs = [ServedConfig(q, mode) for q in formats for mode in modes]
            report["editor"] = asyncio.run(
                editor_latency(
                    settings,
                    info,
                    engines,
                    configs,
                    ggufs,
                    spots(sources, args.editor_spots, args.seed),
                    args.threads,
                    out / "editor",
                    _say,
                )
            )
            _say("inline suggestions through the server done")
    finally:
        _close_all(engines)
    report["targets"] = targets(report)
    _save(report, out)
    return 0


def _serving_engines(loaded: Any, formats: list[str]) -> dict[str, Backend]:
    """An in-process engine per weight format: the model as loaded for `AS_SERVED` (a GGUF
    served from its blocks, as it is), else its weights packed or compiled as named."""
    from lsp_llm.engine.local import LocalBackend
    from lsp_llm.engine.worker import Engine

    return {
        fmt: LocalBackend(
            Engine(
                loaded
                if fmt == AS_SERVED
                else replace(loaded, quantization=split(fmt)[0], compile=split(fmt)[1])
            )
        )
        for fmt in formats
    }


def _described(loaded: Any, formats: list[str]) -> dict[str, Any]:
    """What a report says of the model, the machine and the libraries it ran with."""
    import importlib.metadata

    import torch
    import transformers

    versions = {"torch": torch.__version__, "transformers": transformers.__version__}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions["llama-cpp-python"] = importlib.metadata.version("llama-cpp-python")
    return {
        "model": loaded.name,
        "draft_model": loaded.draft_name,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "formats": formats,
        "served_format": loaded.quantization,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "versions": versions,
    }


def _speculation_modes(loaded: Any) -> tuple[SpeculationMode, ...]:
    if loaded.draft_model:
        return ("off", "draft", "promptLookup", "auto")
    return ("off", "promptLookup", "auto")


def _close_all(engines: dict[str, Backend]) -> None:
    for each in engines.values():
        each.close()


def _editor_only(args: Any, settings: Settings, source: Any, out: Path) -> int:
    """`--editor-only`: inline suggestions through `lsp-llm serve`, the model as served in
    every speculation mode, against llama.cpp on the same file; nothing else."""
    from lsp_llm.engine.load.loading import load
    from lsp_llm.train.data import load_sources

    loaded = load(settings)
    formats = weight_formats(args.formats, loaded)
    engines = _serving_engines(loaded, formats)
    modes = _speculation_modes(loaded)
    ggufs: dict[str, str] = {}
    if not args.no_llama_cpp and importlib.util.find_spec("llama_cpp") is not None:
        ggufs = llama_models(source, out, rewrite=formats != [AS_SERVED])
    else:
        why = "--no-llama-cpp" if args.no_llama_cpp else "llama-cpp-python is not installed"
        _say(f"llama.cpp left out: {why} (scripts/bench installs it)")
    sources = [(s.path, s.text) for s in load_sources(held_out=True)]
    info = next(iter(engines.values())).tokens
    report: dict[str, Any] = {**_described(loaded, formats), "modes": {}}
    try:
        report["editor"] = asyncio.run(
            editor_latency(
                settings,
                info,
                engines,
                [ServedConfig(q, mode) for q in formats for mode in modes],
                ggufs,
                spots(sources, args.editor_spots, args.seed),
                args.threads,
                out / "editor",
                _say,
            )
        )
    finally:
        _close_all(engines)
    report["targets"] = targets(report)
    _save(report, out)
    return 0


def _checkpoint(report: dict[str, Any], out: Path) -> None:
    """What is measured so far, in case a later stage fails (a long run on a real model)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.partial.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def _save(report: dict[str, Any], out: Path) -> None:
    text = markdown(report)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(text + "\n", encoding="utf-8")
    charted = chart(report, out / "chart.png")
    _say(
        f"wrote {out / 'report.json'}, {out / 'report.md'}"
        + (f" and {out / 'chart.png'}" if charted else "")
    )
