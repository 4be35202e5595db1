"""Inline suggestions as an editor asks for them: through `lsp-llm serve` over stdio, one
server per weight format and speculation mode, against llama.cpp generating the same
tokens from the same GGUF file with the same threads.

At each spot (a held-out line with its code removed, the cursor at its indentation) the
client opens the document and asks for a suggestion, then the user types the line's first
character and the client asks again. The second request is the one timed: its prompt
shares all but the last token or two with the first, so both sides are warm (the server
re-reads what changed; llama.cpp reuses the longest common token prefix by itself). The
second document is opened under a new name, so the server's typing-ahead cache cannot
answer it without the model.

llama.cpp is given the server's own second prompt (built in-process by the same code) and
asked for as many tokens as our engine decoded for that suggestion (the tokens that spell
the text healing cut from the prompt and the token that ended the line count: llama.cpp
would decode them too): the time it needs for the same work. Every contender runs every
spot, in a rotated order.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lsp_llm.bench.formats import split
from lsp_llm.bench.latency import _median, _wire
from lsp_llm.bench.runners import LLAMA_GREEDY, open_llama
from lsp_llm.config import Settings
from lsp_llm.context.completion import plan_completion
from lsp_llm.context.prompts import EditorContext
from lsp_llm.evaluation.holes import punch_holes
from lsp_llm.generation.backend import Backend
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import Speculation, SpeculationMode


@dataclass(frozen=True)
class Spot:
    name: str
    first: str
    """The document before the keystroke (the cursor at `first_offset`)."""
    first_offset: int
    second: str
    """After typing one character (the cursor at `first_offset + 1`)."""
    line: int
    first_column: int
    """UTF-16 column, as LSP counts."""


def spots(sources: list[tuple[str, str]], count: int, seed: int = 0) -> list[Spot]:
    """`count` line and mid-line holes (alternating) whose removed text starts with a
    character a user would type."""
    holes = punch_holes(sources, count, seed)
    by_kind = [
        [h for h in holes if h.kind == kind and h.expected[:1].strip()]
        for kind in ("line", "midline")
    ]
    out = []
    for hole in [h for pair in zip(*by_kind, strict=False) for h in pair][:count]:
        text, offset = hole.text, hole.offset
        line_start = text.rfind("\n", 0, offset) + 1
        out.append(
            Spot(
                name=f"{hole.kind} {hole.path}:{hole.line}",
                first=text,
                first_offset=offset,
                second=text[:offset] + hole.expected[0] + text[offset:],
                line=text.count("\n", 0, offset),
                first_column=len(text[line_start:offset].encode("utf-16-le")) // 2,
            )
        )
    return out


@dataclass(frozen=True)
class Reference:
    """What our engine decodes at a spot for one weight format (in-process, greedy)."""

    tokens: int
    """Tokens decoded, healing's and the line's end included."""
    suggestion: str | None
    first_ids: tuple[int, ...]
    second_ids: tuple[int, ...]


def reference(engine: Backend, info: TokenizerInfo, settings: Settings, spot: Spot) -> Reference:
    """Both requests in-process, greedy with no speculation: the second after the first,
    as in the server (packed weights read a few new tokens differently from a whole
    prompt, so the cache's state is part of the result)."""
    off = Speculation("off")
    first = plan_completion(info, EditorContext(spot.first, spot.first_offset), settings)
    engine.generate(replace(first.request, speculation=off))
    plan = plan_completion(info, EditorContext(spot.second, spot.first_offset + 1), settings)
    done = engine.generate(replace(plan.request, speculation=off))
    suggestion = plan.suggestion(done.text, done.reason)
    return Reference(
        # every token decoded: those re-spelling the healed text and the one that ended
        # the line too (llama.cpp, given the cut prompt, must decode them as well)
        tokens=len(done.token_ids),
        suggestion=suggestion.text if suggestion else None,
        first_ids=first.prompt.token_ids,
        second_ids=plan.prompt.token_ids,
    )


@dataclass
class Timings:
    ms: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    same: int = 0
    """Suggestions identical to the in-process greedy suggestion of the same weights."""


Contender = Callable[[int, Spot], Awaitable[float]]
"""Time (ms) to the full suggestion at spot `i`."""


def llama_cpp_contender(
    gguf: str, threads: int, n_ctx: int, refs: list[Reference]
) -> Callable[[int, Spot], float]:
    """llama.cpp on `gguf`: warm with the first prompt, then time `refs[i].tokens` tokens
    greedily from the second (its prefix cache re-reads only what differs)."""
    llm = open_llama(gguf, threads, n_ctx)

    def tokens(ids: tuple[int, ...], n: int) -> int:
        made = 0
        for _token in llm.generate(list(ids), reset=True, **LLAMA_GREEDY):
            made += 1
            if made >= n:
                break
        return made

    def run(i: int, spot: Spot) -> float:
        ref = refs[i]
        tokens(ref.first_ids, 1)
        t0 = time.perf_counter()
        tokens(ref.second_ids, max(1, ref.tokens))
        return (time.perf_counter() - t0) * 1000

    return run


@dataclass(frozen=True)
class ServedConfig:
    quantization: str
    """A weight format (`formats.py`): a `quantization` value, maybe with `+compile`."""
    mode: SpeculationMode

    @property
    def name(self) -> str:
        return f"serve {self.quantization} {self.mode}"


def served_settings(settings: Settings, config: ServedConfig, threads: int) -> Settings:
    quantization, compile_ = split(config.quantization)
    return replace(
        settings,
        quantization=quantization,  # type: ignore[arg-type]
        compile=compile_,
        threads=threads,
        speculation=replace(settings.speculation, mode=config.mode),
        # the documents are copies of one file: no extra context from the others
        completion=replace(settings.completion, extra_context=False),
    )


def _p90(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def _llama_label(name: str, fmt: str, refs: Mapping[str, object]) -> str:
    """llama.cpp's row for the token counts of weight format `fmt` (of those in `refs`):
    one per quantization, a compiled format shares its eager twin's (the same tokens)."""
    bases = _bases(refs)
    return f"{name} ({split(fmt)[0]} tokens)" if len(bases) > 1 else name


def _bases(refs: Mapping[str, object]) -> dict[str, str]:
    """Quantization -> the first format in `refs` with it."""
    out: dict[str, str] = {}
    for fmt in refs:
        out.setdefault(split(fmt)[0], fmt)
    return out


def _paired(a: list[float], b: list[float]) -> float:
    return _median([x / y for x, y in zip(a, b, strict=True) if y > 0])


async def editor_latency(
    settings: Settings,
    info: TokenizerInfo,
    engines: Mapping[str, Backend],
    configs: list[ServedConfig],
    llama: dict[str, str],
    spots_: list[Spot],
    threads: int,
    workdir: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Time `configs` (servers) and `llama` (name -> GGUF path) over `spots_`. `engines`
    maps each quantization to an in-process engine of those weights (the references)."""
    from lsp_llm.client import ServerSession

    workdir.mkdir(parents=True, exist_ok=True)
    refs = {
        q: [reference(engine, info, settings, spot) for spot in spots_]
        for q, engine in engines.items()
    }
    say(f"editor: references for {len(spots_)} spots in {len(engines)} weight formats")
    sessions: dict[str, ServerSession] = {}
    contenders: dict[str, Contender] = {}
    timings: dict[str, Timings] = {}
    try:
        for config in configs:
            session = ServerSession(_wire(served_settings(settings, config, threads)))
            await session.start()
            sessions[config.name] = session
            contenders[config.name] = _served(session, config, refs, workdir, timings)
        say(f"editor: {len(sessions)} servers up")
        # the first prompt may be the longer one: a typed character can move the window's
        # first line out of the budget
        longest = max(
            max(len(r.first_ids) + 1, len(r.second_ids) + r.tokens)
            for rs in refs.values()
            for r in rs
        )
        for name, gguf in llama.items():
            for fmt in _bases(refs).values():
                rs = refs[fmt]
                run = llama_cpp_contender(gguf, threads, max(512, longest + 64), rs)
                label = _llama_label(name, fmt, refs)
                contenders[label] = _sync(run, rs, timings, label)
        names = list(contenders)
        for name in names:
            timings.setdefault(name, Timings())
        for i, spot in enumerate(spots_):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                timings[name].ms.append(await contenders[name](i, spot))
            say(f"editor: spot {i + 1}/{len(spots_)} {spot.name}")
    finally:
        for session in sessions.values():
            await session.close()
    return _summary(configs, llama, refs, timings, len(spots_))


def _served(
    session: Any,
    config: ServedConfig,
    refs: dict[str, list[Reference]],
    workdir: Path,
    timings: dict[str, Timings],
) -> Contender:
    from lsprotocol import types

    record = timings.setdefault(config.name, Timings())

    async def run(i: int, spot: Spot) -> float:
        slug = config.name.replace(" ", "_")
        first = session.open(workdir / f"{slug}_{i}_first.py", spot.first)
        await session.inline(first, spot.line, spot.first_column)
        second = session.open(workdir / f"{slug}_{i}_second.py", spot.second)
        t0 = time.perf_counter()
        result = await session.inline(second, spot.line, spot.first_column + 1)
        ms = (time.perf_counter() - t0) * 1000
        for uri in (first, second):
            session.client.text_document_did_close(
                types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
            )
        items = result.items if result is not None else []
        served = items[0].insert_text if items else None
        ref = refs[config.quantization][i]
        record.same += served == ref.suggestion
        record.tokens.append(ref.tokens)
        return ms

    return run


def _sync(
    run: Callable[[int, Spot], float], refs: list[Reference], timings: dict[str, Timings], name: str
) -> Contender:
    record = timings.setdefault(name, Timings())

    async def wrapped(i: int, spot: Spot) -> float:
        record.tokens.append(refs[i].tokens)
        return run(i, spot)

    return wrapped


def _summary(
    configs: list[ServedConfig],
    llama: dict[str, str],
    refs: dict[str, list[Reference]],
    timings: dict[str, Timings],
    spots: int,
) -> dict[str, Any]:
    def llama_for(name: str, q: str) -> Timings | None:
        return timings.get(_llama_label(name, q, refs))

    base = next((c for c in configs if c.mode == "off"), None)
    rows: dict[str, dict[str, Any]] = {}
    for config in configs:
        t = timings[config.name]
        row: dict[str, Any] = {
            "median_ms": _median(t.ms),
            "p90_ms": _p90(t.ms),
            "tokens_median": _median([float(n) for n in t.tokens]),
            "identical": t.same,
            "spots": spots,
        }
        off = timings.get(ServedConfig(config.quantization, "off").name)
        if off is not None:
            row["speedup_vs_off_same_weights"] = _paired(off.ms, t.ms)
        quantization, compiled = split(config.quantization)
        eager = timings.get(ServedConfig(quantization, config.mode).name)
        if compiled and eager is not None:
            row["speedup_vs_eager"] = _paired(eager.ms, t.ms)
        if base is not None:
            row["speedup_vs_" + base.name.replace(" ", "_")] = _paired(timings[base.name].ms, t.ms)
        for name in llama:
            peer = llama_for(name, config.quantization)
            if peer is not None:
                row[f"ratio_to_{name}"] = _paired(t.ms, peer.ms)
        rows[config.name] = row
    for name in llama:
        for q in _bases(refs).values():
            peer = llama_for(name, q)
            if peer is not None:
                rows[_llama_label(name, q, refs)] = {
                    "median_ms": _median(peer.ms),
                    "p90_ms": _p90(peer.ms),
                    "tokens_median": _median([float(n) for n in peer.tokens]),
                    "spots": spots,
                }
    return {"spots": spots, "baseline": base.name if base else None, "rows": rows}
