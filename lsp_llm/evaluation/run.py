"""Run the evaluation: the model (through the same completion path as the server) and the
baselines on held-out holes, then speculative decoding in every mode; print Markdown
tables and optionally write JSON.

    lsp-llm eval [--model smollm2|bundled|DIR|FILE.gguf] [--per-kind 60] [--json report.json]
                 [--no-speculation] [--compare-styles] [--ablations]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lsp_llm.config import BackendSettings, CompletionSettings, Settings, SpeculationSettings
from lsp_llm.context.bracefunctions import GRAMMARS
from lsp_llm.context.completion import CompletionPlan, plan_completion
from lsp_llm.context.languages import language_id
from lsp_llm.context.postprocess import Suggestion
from lsp_llm.context.prompts import CodeContext, EditorContext, chat_prompt
from lsp_llm.evaluation.braceholes import any_candidates
from lsp_llm.evaluation.holes import KINDS, PROGRESS_EVERY, Hole, hash_text, punch_holes
from lsp_llm.evaluation.metrics import indent_before, score, stray_whitespace
from lsp_llm.evaluation.ngram import NGramModel
from lsp_llm.generation.backend import Backend
from lsp_llm.generation.budget import CharacterBudget
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import (
    Done,
    GenerationRequest,
    Speculation,
    SpeculationMode,
    StopRules,
)

MODES: tuple[SpeculationMode, ...] = ("off", "draft", "promptLookup", "auto")
CONTINUATION_TOKENS = 64
SAMPLE_FUNCTION = "def add(a, b):\n    return a + b\n"


@dataclass
class Tally:
    exact: dict[str, list[bool]] = field(default_factory=lambda: {k: [] for k in KINDS})
    similarity: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    stray: list[bool] = field(default_factory=list)

    def add(self, hole: Hole, predicted: str, replace_before: int = 0) -> None:
        """`predicted` is inserted at the cursor after `replace_before` characters before
        it are removed (a re-indented line)."""
        indent = indent_before(hole.text, hole.offset)
        exact, similarity = score(hole.kind, predicted, hole.expected, indent, replace_before)
        self.exact[hole.kind].append(exact)
        self.similarity[hole.kind].append(similarity)
        if hole.kind != "reindent":
            self.stray.append(stray_whitespace(predicted) and not replace_before)

    def add_suggestion(self, hole: Hole, sug: Suggestion | None) -> None:
        self.add(hole, sug.text if sug else "", sug.replace_before if sug else 0)

    def summary(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for kind in (*KINDS, "all"):
            kinds = KINDS if kind == "all" else (kind,)
            ex = [e for k in kinds for e in self.exact[k]]
            sim = [s for k in kinds for s in self.similarity[k]]
            n = len(ex)
            out[kind] = {
                "n": n,
                "exact": sum(ex) / n if n else 0.0,
                "similarity": sum(sim) / n if n else 0.0,
            }
        out["all"]["stray_whitespace"] = sum(self.stray) / max(1, len(self.stray))
        return out


@dataclass
class ModeStats:
    completion_tokens: int = 0
    decode_forwards: int = 0
    drafted: int = 0
    accepted: int = 0
    draft_forwards: int = 0
    busy_s: float = 0.0
    identical: int = 0
    cases: int = 0
    at_limit: int = 0
    """Generations that ended at `max_new_tokens`, not at a stop rule (runaway text)."""

    def add(self, done: Done, same_as_greedy: bool) -> None:
        s = done.stats
        self.at_limit += done.reason == "length"
        self.completion_tokens += done.usage.completion_tokens
        # the last prefill pass yields the first token, so it counts as a decode pass
        self.decode_forwards += s.target_forwards - s.prefill_forwards + 1
        self.drafted += s.drafted_tokens
        self.accepted += s.accepted_draft_tokens
        self.draft_forwards += s.draft_forwards
        self.busy_s += (done.timings.total_ms - done.timings.queue_ms) / 1000
        self.identical += same_as_greedy
        self.cases += 1

    def summary(self) -> dict[str, float]:
        return {
            "tokens_per_target_forward": self.completion_tokens / max(1, self.decode_forwards),
            "acceptance_rate": self.accepted / self.drafted if self.drafted else 0.0,
            "tokens_per_s": self.completion_tokens / self.busy_s if self.busy_s else 0.0,
            "identical": self.identical / max(1, self.cases),
            "completion_tokens": self.completion_tokens,
            "tokens_per_generation": self.completion_tokens / max(1, self.cases),
            "at_token_limit": self.at_limit / max(1, self.cases),
        }


def previous_line(hole: Hole) -> str:
    """Baseline: repeat the previous non-blank line (from the cursor's column mid-line)."""
    before = hole.text[: hole.offset]
    start = before.rfind("\n") + 1
    lines = [ln for ln in before[:start].split("\n") if ln.strip()]
    if not lines:
        return ""
    prev = lines[-1]
    return prev[hole.offset - start :] if hole.kind == "midline" else prev.strip()


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def evaluate(
    engine: Backend,
    settings: Settings,
    training_texts: list[str],
    holes: list[Hole],
    modes: tuple[SpeculationMode, ...] = MODES,
    progress: Callable[[str], None] = _progress,
    *,
    continuation: bool = True,
    compare_styles: bool = False,
    ablations: bool = False,
) -> dict[str, Any]:
    """Score the model on `holes` beside the baselines; `modes` after the first only check
    speculation. `compare_styles` also scores the other prompt styles the model can take;
    `ablations` scores the served style with token healing off and with the code after the
    cursor's line hidden (no line/block choice from it, no cut of repeated code)."""
    info = engine.tokens
    if isinstance(info.tokenizer, CharacterBudget):  # info.approximate
        raise ValueError("the eval needs the model's tokenizer: set --model")
    plans = [plan_completion(info, _context(h), settings) for h in holes]
    t0 = time.perf_counter()
    ngram = NGramModel(len(info.tokenizer)).fit(info.encode(t) for t in training_texts)
    progress(f"n-gram baseline fitted in {time.perf_counter() - t0:.0f}s")

    tallies = {"model": Tally(), "empty": Tally(), "previous line": Tally(), "n-gram": Tally()}
    by_language = {h.language: Tally() for h in holes}
    for hole in holes:
        tallies["empty"].add(hole, "")
        tallies["previous line"].add(hole, previous_line(hole))
        # The n-gram continues the text before the cursor as it is (the baseline it always
        # was: it does not write a line's indentation the way a model does).
        plan = plan_completion(info, _context(hole), settings, reindent=False)
        raw, reason = ngram.complete(
            info.tokenizer,
            info.encode(plan.prompt.prefix),
            plan.request.stop,
            plan.request.max_new_tokens,
        )
        sug = plan.suggestion(raw, reason)
        tallies["n-gram"].add_suggestion(hole, sug)

    # The first mode's output is the reference: greedy text is the same in every mode, so
    # it is scored once and the other modes are checked against it.
    examples: list[dict[str, str]] = []
    every = max(1, len(holes) // (3 * len(KINDS)))

    def score(i: int, done: Done) -> None:
        hole, plan = holes[i], plans[i]
        sug = plan.suggestion(done.text, done.reason)
        predicted = sug.text if sug else ""
        tallies["model"].add_suggestion(hole, sug)
        by_language[hole.language].add_suggestion(hole, sug)
        if i % every == 0:
            examples.append({"kind": hole.kind, "expected": hole.expected, "predicted": predicted})

    speculation = speculate(engine, [p.request for p in plans], modes, score, progress)
    served = info.prompt_style(settings.completion.prompt_style)
    label = f"model ({served})"
    tallies[label] = tallies.pop("model")
    for name, variant in variants(info, settings, served, compare_styles, ablations).items():
        t0 = time.perf_counter()
        tallies[name] = score_plans(engine, holes, [variant(h) for h in holes])
        progress(f"{name}: {len(holes)} generations in {time.perf_counter() - t0:.0f}s")
    report: dict[str, Any] = {
        "cases": {k: sum(h.kind == k for h in holes) for k in KINDS},
        "prompt_style": served,
        "scores": {name: t.summary() for name, t in tallies.items()},
        "languages": {language: t.summary() for language, t in sorted(by_language.items())},
        "speculation": speculation,
        "examples": examples,
        "samples": samples(engine, info, settings),
    }
    if continuation:
        # The same prompts continued for a fixed length with no stop rules: what the draft
        # achieves per target pass, free of the ceiling a short completion puts on it (a
        # 3-token line can never reach more than 3 tokens in 2 passes).
        continued = [
            replace(p.request, max_new_tokens=CONTINUATION_TOKENS, stop=StopRules()) for p in plans
        ]
        report["continuation"] = speculate(engine, continued, modes, lambda i, done: None, progress)
    return report


Variant = Callable[[Hole], CompletionPlan]


def _context(hole: Hole, hide_suffix: bool = False) -> EditorContext:
    """The editor context of a hole; `hide_suffix` keeps only the rest of its line after
    the cursor, as if nothing followed it."""
    text = hole.text
    if hide_suffix:
        nl = text.find("\n", hole.offset)
        text = text if nl < 0 else text[:nl]
    return EditorContext(text, hole.offset, hole.language, hole.path)


def variants(
    info: TokenizerInfo, settings: Settings, served: str, styles: bool, ablations: bool
) -> dict[str, Variant]:
    """The other ways of asking that the report scores beside the served one."""
    out: dict[str, Variant] = {}

    def planner(**changes: Any) -> Variant:
        changed = replace(settings, completion=replace(settings.completion, **changes))
        return lambda h: plan_completion(info, _context(h), changed)

    if served == "fim" and info.fim_order(settings.completion.fim_order) == "spm":
        # The model learned both orders; the server sends SPM. Score PSM too, to show what
        # that choice costs or gains in quality.
        out["model, PSM order"] = planner(fim_order="psm")
    if styles:
        for style in ("fim", "prefix", "chat"):
            if style != served and info.prompt_style(style) == style:
                out[f"model ({style})"] = planner(prompt_style=style)
    if ablations:

        def unhealed(h: Hole) -> CompletionPlan:
            plan = plan_completion(info, _context(h), settings)
            ids = (*plan.request.prompt_ids, *info.encode(plan.prompt.heal))
            text = plan.request.prompt_text + info.defuse(plan.prompt.heal)
            request = replace(plan.request, prompt_ids=ids, prompt_text=text, heal="")
            return replace(plan, request=request)

        out[f"model ({served}), no token healing"] = unhealed

        def unseen_suffix(h: Hole) -> CompletionPlan:
            return plan_completion(info, _context(h, hide_suffix=True), settings)

        out[f"model ({served}), code below the line unread"] = unseen_suffix

        def indentation_kept(h: Hole) -> CompletionPlan:
            return plan_completion(info, _context(h), settings, reindent=False)

        out[f"model ({served}), cursor's indentation kept in the prompt"] = indentation_kept
    return out


def score_plans(engine: Backend, holes: list[Hole], plans: list[CompletionPlan]) -> Tally:
    tally = Tally()
    for hole, plan in zip(holes, plans, strict=True):
        done = engine.generate(plan.request)
        sug = plan.suggestion(done.text, done.reason)
        tally.add_suggestion(hole, sug)
    return tally


def speculate(
    engine: Backend,
    requests: list[GenerationRequest],
    modes: tuple[SpeculationMode, ...],
    on_reference: Callable[[int, Done], None],
    progress: Callable[[str], None],
) -> dict[str, dict[str, float]]:
    """Run every request in every mode; the first mode's output is the reference (passed to
    `on_reference`) that the others must reproduce token for token."""
    greedy: list[tuple[int, ...]] = []
    stats: dict[str, ModeStats] = {}
    for mode in modes:
        tally = stats[mode] = ModeStats()
        t0 = time.perf_counter()
        for i, request in enumerate(requests):
            done = engine.generate(_with_mode(request, mode))
            if mode == modes[0]:
                greedy.append(done.token_ids)
                on_reference(i, done)
            tally.add(done, done.token_ids == greedy[i])
            if (i + 1) % PROGRESS_EVERY == 0 and i + 1 < len(requests):
                progress(
                    f"mode {mode}: {i + 1} of {len(requests)} in {time.perf_counter() - t0:.0f}s"
                )
        progress(f"mode {mode}: {len(requests)} generations in {time.perf_counter() - t0:.0f}s")
    return {m: t.summary() for m, t in stats.items()}


def _with_mode(request: GenerationRequest, mode: SpeculationMode) -> GenerationRequest:
    return replace(request, speculation=replace(request.speculation, mode=mode))


def samples(engine: Backend, info: TokenizerInfo, settings: Settings) -> dict[str, str]:
    """The two readable-output checks of the model card, greedy."""
    text = "def is_prime(n):\n    "
    plan = plan_completion(info, EditorContext(text, len(text), "python"), settings)
    done = engine.generate(plan.request)
    sug = plan.suggestion(done.text, done.reason)
    prompt = chat_prompt(
        info,
        [{"role": "user", "content": "What does this function do?"}],
        system_prompt=settings.chat.system_prompt,
        context_tokens=settings.chat.context_tokens,
        code=CodeContext(SAMPLE_FUNCTION, language="python"),
    )
    answer = engine.generate(prompt.request(max_new_tokens=96, speculation=Speculation())).text
    return {
        "completion_prompt": text,
        "completion": sug.text if sug else "",
        "chat_code": SAMPLE_FUNCTION,
        "chat_question": "What does this function do?",
        "chat_answer": answer,
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| predictor | "
        + " | ".join(f"{k} exact | {k} sim" for k in (*KINDS, "all"))
        + " | starts with whitespace |",
        "|---|" + "---:|---:|" * (len(KINDS) + 1) + "---:|",
    ]
    for name, by_kind in report["scores"].items():
        cells = []
        for kind in (*KINDS, "all"):
            s = by_kind[kind]
            scored = s["n"] or kind == "all"  # a kind with no holes (the language slice's)
            cells += [f"{100 * s['exact']:.1f}%", f"{s['similarity']:.3f}"] if scored else ["–"] * 2
        cells.append(f"{100 * by_kind['all'].get('stray_whitespace', 0):.1f}%")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if len(report.get("languages", {})) > 1:
        lines += ["", language_markdown(report["languages"])]
    for key, title in (
        ("speculation", "completions (editor stop rules)"),
        ("continuation", f"{CONTINUATION_TOKENS}-token continuations"),
    ):
        if not report.get(key):
            continue  # --no-speculation: no continuations
        lines += [
            "",
            f"| speculation, {title} | tokens / target forward | draft acceptance | tok/s"
            " | same as greedy | tokens / generation | ran to the token limit |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for mode, s in report.get(key, {}).items():
            # continuations have no stop rules: every one runs to the limit
            limit = f"{100 * s.get('at_token_limit', 0):.1f}%" if key == "speculation" else "–"
            lines.append(
                f"| {mode} | {s['tokens_per_target_forward']:.2f}"
                f" | {100 * s['acceptance_rate']:.1f}% | {s['tokens_per_s']:.1f}"
                f" | {100 * s['identical']:.0f}% | {s.get('tokens_per_generation', 0):.1f}"
                f" | {limit} |"
            )
    return "\n".join(lines)


def language_markdown(languages: dict[str, dict[str, dict[str, float]]]) -> str:
    """The model's scores per language: holes, then exact / similarity per kind."""
    lines = [
        "| language | holes | " + " | ".join(KINDS) + " | all |",
        "|---|---:|" + "---:|" * (len(KINDS) + 1),
    ]
    for language, by_kind in languages.items():
        cells = [
            f"{100 * by_kind[k]['exact']:.0f}% / {by_kind[k]['similarity']:.2f}"
            if by_kind[k]["n"]
            else "–"
            for k in (*KINDS, "all")
        ]
        lines.append(f"| {language} | {by_kind['all']['n']:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def source_files(root: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """The files under `root` in a language the eval can punch holes in, split by a hash
    of their path: half held out for holes, half the n-gram baseline's training text."""
    held_out: list[tuple[str, str]] = []
    training: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        language = language_id(None, relative)
        if language != "python" and language not in GRAMMARS:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if hash_text(relative) % 2:
            training.append(text)
        else:
            held_out.append((relative, text))
    return held_out, training


def _extra_context(
    engine: Backend, settings: Settings, holes: list[Hole], args: Any
) -> dict[str, Any]:
    from lsp_llm.evaluation import crossfile
    from lsp_llm.train.data import load_sources

    packages = crossfile.package_sources()
    held_out = {s.path: s.text for s in load_sources(held_out=True)}
    cross = crossfile.cross_file_holes(packages)
    chosen = crossfile.sample_cross(cross, args.extra_context, args.seed)
    _progress(f"extra context: {len(chosen)} of {len(cross)} cross-file holes, {len(holes)} usual")
    usual = crossfile.usual_sessions(holes, packages, held_out, args.seed)
    return crossfile.extra_context_report(engine, settings, usual, chosen, _progress)


def main(args: Any) -> int:
    import torch

    from lsp_llm.backends import load_backend
    from lsp_llm.train.data import HELD_OUT, load_sources

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = Settings(
        model=args.model,
        draft_model=args.draft_model,
        device=args.device,
        quantization=args.quantization,
        completion=CompletionSettings(
            max_new_tokens=args.max_new_tokens, prompt_style=args.prompt_style
        ),
        speculation=SpeculationSettings(num_tokens=args.num_tokens),
        backend=BackendSettings(url=args.backend_url, model=args.backend_model),
    )
    remote = settings.backend.remote
    if remote and args.model is None:
        print("lsp-llm eval: --backend-url needs --model (the tokenizer)", file=sys.stderr)
        return 2
    if args.sources and args.extra_context:
        print("lsp-llm eval: --extra-context uses the stdlib's modules: not with --sources",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.sources:
        files, training = source_files(Path(args.sources))
        holes = [
            hole
            for language in sorted({language_id(None, path) for path, _ in files})
            for hole in punch_holes(
                [(p, t) for p, t in files if language_id(None, p) == language],
                args.per_kind,
                args.seed,
                any_candidates,
            )
        ]
        where = f"{args.sources} (another half of its files trains the n-gram)"
    else:
        held_out = load_sources(held_out=True)
        files = [(s.path, s.text) for s in held_out]
        holes = punch_holes(files, args.per_kind, args.seed)
        training = [s.text for s in load_sources(held_out=False)]
        where = f"this Python's stdlib ({', '.join(HELD_OUT)})"
    if not holes:
        print(f"lsp-llm eval: no holes found in {where}", file=sys.stderr)
        return 1
    _progress(f"{len(holes)} holes from {len(files)} held-out files of {where}, seed {args.seed}")
    engine = load_backend(settings, lambda fraction, message: _progress(message))
    if engine.health:
        print(f"lsp-llm eval: {engine.health}", file=sys.stderr)
        engine.close()
        return 1
    serving = engine.serving
    if not remote and args.draft_model is None and serving.draft_model is None:
        _progress("no draft model: the draft and auto modes draft nothing")
    try:
        report = evaluate(
            engine,
            settings,
            training,
            holes,
            ("off",) if args.no_speculation or remote else MODES,
            continuation=not (args.no_speculation or remote),
            compare_styles=args.compare_styles,
            ablations=args.ablations,
        )
        if args.extra_context:
            report["extra_context"] = _extra_context(engine, settings, holes, args)
    finally:
        engine.close()
    report["model"] = serving.model
    report["draft_model"] = serving.draft_model
    report["quantization"] = serving.quantization
    report["backend"] = serving.device if remote else "local"
    report["seed"] = args.seed
    report["threads"] = torch.get_num_threads()
    print(markdown(report))
    if "extra_context" in report:
        from lsp_llm.evaluation.crossfile import markdown as extra_markdown

        print("\n" + extra_markdown(report["extra_context"]))
    s = report["samples"]
    print(f"\ncompletion of {s['completion_prompt']!r}: {s['completion']!r}")
    print(f"chat over {s['chat_code']!r}, {s['chat_question']!r}: {s['chat_answer']!r}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return 0
