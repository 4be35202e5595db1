"""The eval's extra-context section: does code from other files help, and hurt nowhere?

Cross-file holes: in a package's module, a line that uses a name the module imports from
a sibling module (`from ._models import Response`, `from .decoder import JSONDecodeError`)
and that the sibling defines; the cursor sits right before the name's first use on the
line, and the rest of the line is expected. The packages are the held-out stdlib ones
(`json`, `html`) and a few the project depends on (`httpx`, `h11`, `pygls`), which the
bundled model never saw.

Every hole is scored twice, same prompts otherwise: without extra context, and with it as
an editor session would have it. For a cross-file hole the defining module is open and
its definition was visited; for the usual kinds (line, midline, body, indent) two other
modules of the same package, or two other held-out files, are open (mostly unrelated code,
which the ranking must keep out).
"""

from __future__ import annotations

import importlib.util
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from lsp_llm.config import Settings
from lsp_llm.context.completion import CompletionPlan, plan_completion
from lsp_llm.context.outline import imports, module_paths
from lsp_llm.context.prompts import EditorContext
from lsp_llm.evaluation.holes import PROGRESS_EVERY, Hole
from lsp_llm.evaluation.metrics import indent_before, score
from lsp_llm.generation.backend import Backend
from lsp_llm.server.neighbours import Neighbourhood

PACKAGES = ("httpx", "h11", "pygls")
"""Installed packages (dependencies) whose modules import each other."""
ROOT = Path("/workspace")
"""Where the evaluated files seem to live (nothing is read from there)."""


@dataclass(frozen=True)
class Neighbour:
    path: str
    text: str
    line: int
    """The line the user visited or edited in it."""


@dataclass(frozen=True)
class SessionHole:
    hole: Hole
    neighbours: tuple[Neighbour, ...]


def package_sources() -> dict[str, dict[str, str]]:
    """Package name -> {path relative to the workspace: text}."""
    from lsp_llm.train.data import load_sources

    out: dict[str, dict[str, str]] = {}
    for source in load_sources(held_out=True):
        if "/" in source.path:
            out.setdefault(source.path.split("/", 1)[0], {})[source.path] = source.text
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(next(iter(spec.submodule_search_locations)))
        files = {}
        for path in sorted(folder.rglob("*.py")):
            text = path.read_text(encoding="utf-8", errors="replace")
            if 200 <= len(text) <= 200_000:
                files[f"{name}/{path.relative_to(folder).as_posix()}"] = text
        out[name] = files
    return out


def _defined(text: str, name: str) -> int | None:
    """The 0-based line where `text` defines `name` at top level, if it does."""
    match = re.search(
        rf"^(?:async def|def|class) {re.escape(name)}\b|^{re.escape(name)}\s*[:=]", text, re.M
    )
    return None if match is None else text.count("\n", 0, match.start())


def cross_file_holes(packages: dict[str, dict[str, str]]) -> list[SessionHole]:
    """Every cross-file hole of `packages` (at most one per line)."""
    out: list[SessionHole] = []
    for files in packages.values():
        for path, text in files.items():
            taken: dict[str, Neighbour] = {}
            for imp in imports(text):
                for candidate in module_paths(imp.module, path):
                    source = files.get(candidate)
                    if source is None:
                        continue
                    for name in imp.names:
                        at = _defined(source, name)
                        if at is not None and len(name) >= 4:
                            taken[name] = Neighbour(candidate, source, at)
                    break
            if not taken:
                continue
            pattern = re.compile(r"\b(" + "|".join(map(re.escape, taken)) + r")\b")
            offset = 0
            for number, line in enumerate(text.splitlines(keepends=True)):
                stripped = line.strip()
                found = pattern.search(line)
                usable = found and not stripped.startswith(("import ", "from ", "#", '"', "'"))
                if usable and found is not None and stripped and len(stripped) < 120:
                    cut = offset + found.start()
                    expected = line[found.start() :].rstrip("\r\n")
                    hole = Hole(
                        "midline",
                        path,
                        number + 1,
                        text[:cut] + text[offset + len(line.rstrip("\r\n")) :],
                        cut,
                        expected,
                    )
                    out.append(SessionHole(hole, (taken[found.group(1)],)))
                offset += len(line)
    return out


def usual_sessions(
    holes: list[Hole], packages: dict[str, dict[str, str]], held_out: dict[str, str], seed: int
) -> list[SessionHole]:
    """The usual holes with two other files open: from the same package when there is one,
    else other held-out files."""
    rng = random.Random(seed)
    out = []
    for hole in holes:
        package = packages.get(hole.path.split("/", 1)[0], {}) if "/" in hole.path else {}
        pool = sorted(p for p in (package or held_out) if p != hole.path)
        chosen = rng.sample(pool, min(2, len(pool)))
        files = package or held_out
        neighbours = tuple(
            Neighbour(p, files[p], rng.randrange(max(1, files[p].count("\n")))) for p in chosen
        )
        out.append(SessionHole(hole, neighbours))
    return out


def with_extra(
    session: SessionHole,
    settings: Settings,
    info: Any,
    ring: Neighbourhood | None = None,
    typed: str = "",
) -> EditorContext:
    """The editor context of a hole in a session where its neighbours are open and were
    visited, with the extra context the server would add; with `typed`, after the user
    typed that at the cursor (pass the same `ring` to keep the session)."""
    hole = session.hole
    here = ROOT / hole.path
    text = hole.text[: hole.offset] + typed + hole.text[hole.offset :]
    offset = hole.offset + len(typed)
    docs = {here.as_uri(): (here, text)}
    fresh = ring is None
    ring = ring or Neighbourhood()
    for n in session.neighbours:
        uri = (ROOT / n.path).as_uri()
        docs[uri] = (ROOT / n.path, n.text)
        if fresh:
            ring.opened(uri)
            ring.changed(uri, [(n.line, n.line)])
    if fresh:
        ring.opened(here.as_uri())
    s = settings.completion
    chunks = ring.extra_for(
        here.as_uri(),
        text,
        offset,
        folders=[ROOT],
        documents=docs,
        read_disk=False,
        tokenizer=info.tokenizer,
        budget=int(info.budget(s.context_tokens, s.max_new_tokens) * s.extra_context_share),
        language="python",
    )
    return EditorContext(text, offset, "python", str(here), chunks, hole.path, ROOT.name)


KIND_LABELS = ("line", "midline", "body", "indent", "reindent", "cross-file")


def extra_context_report(
    engine: Backend,
    settings: Settings,
    usual: list[SessionHole],
    cross: list[SessionHole],
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """Exact match and similarity per kind, without and with extra context, same holes;
    also how many cross-file prompts carried the defining module."""
    info = engine.tokens
    cases = [(h.hole.kind, h) for h in usual] + [("cross-file", h) for h in cross]
    report: dict[str, Any] = {"cases": {k: sum(c[0] == k for c in cases) for k in KIND_LABELS}}
    carried = 0
    for label, extra in (("without", False), ("with", True)):
        rows: dict[str, list[tuple[bool, float]]] = {k: [] for k in KIND_LABELS}
        tokens = at_limit = 0
        t0 = time.perf_counter()
        for n, (kind, session) in enumerate(cases, 1):
            hole = session.hole
            ctx = (
                with_extra(session, settings, info)
                if extra
                else EditorContext(hole.text, hole.offset, "python", str(ROOT / hole.path))
            )
            if extra and kind == "cross-file":
                carried += any(c.path == session.neighbours[0].path for c in ctx.extra)
            plan: CompletionPlan = plan_completion(info, ctx, settings)
            done = engine.generate(plan.request)
            tokens += done.usage.completion_tokens
            at_limit += done.reason == "length"
            sug = plan.suggestion(done.text, done.reason)
            if n % PROGRESS_EVERY == 0 and n < len(cases):
                progress(f"extra context {label}: {n} of {len(cases)}")
            rows[kind].append(
                score(
                    kind,
                    sug.text if sug else "",
                    hole.expected,
                    indent_before(hole.text, hole.offset),
                    sug.replace_before if sug else 0,
                )
            )
        progress(
            f"extra context {label}: {len(cases)} generations in {time.perf_counter() - t0:.0f}s"
        )
        report[label] = {
            k: {
                "n": len(v),
                "exact": sum(e for e, _ in v) / len(v) if v else 0.0,
                "similarity": sum(s for _, s in v) / len(v) if v else 0.0,
            }
            for k, v in rows.items()
        }
        report[label]["tokens_per_generation"] = tokens / max(1, len(cases))
        report[label]["at_token_limit"] = at_limit / max(1, len(cases))
    report["cross_file_prompts_with_the_module"] = carried / max(1, len(cross))
    report["second_keystroke"] = second_keystroke(engine, settings, cross[:KEYSTROKE_CASES])
    return report


KEYSTROKE_CASES = 12


def second_keystroke(
    engine: Backend, settings: Settings, cases: list[SessionHole]
) -> dict[str, float]:
    """Prompt tokens fed on the keystroke after a suggestion (the user typed its first
    character), with the engine's cache kept from the first: without and with extra
    context. Local engines only (a remote engine reports no prefill)."""
    info = engine.tokens
    out: dict[str, float] = {}
    for label, extra in (("without", False), ("with", True)):
        fed, prompt = 0, 0
        for session in cases:
            ring = Neighbourhood()
            hole = session.hole
            for typed in ("", hole.expected[:1]):
                if extra:
                    ctx = with_extra(session, settings, info, ring, typed)
                else:
                    text = hole.text[: hole.offset] + typed + hole.text[hole.offset :]
                    ctx = EditorContext(text, hole.offset + len(typed), "python", hole.path)
                plan = plan_completion(info, ctx, settings)
                done = engine.generate(plan.request)
            fed += len(plan.request.prompt_ids) - done.stats.reused_prefix_tokens
            prompt += len(plan.request.prompt_ids)
        out[f"{label}_fed"] = fed / max(1, len(cases))
        out[f"{label}_prompt"] = prompt / max(1, len(cases))
    return out


def sample_cross(cross: list[SessionHole], n: int, seed: int) -> list[SessionHole]:
    """`n` cross-file holes, spread over the packages."""
    rng = random.Random(seed)
    by_package: dict[str, list[SessionHole]] = {}
    for h in cross:
        by_package.setdefault(PurePosixPath(h.hole.path).parts[0], []).append(h)
    out: list[SessionHole] = []
    pools = [rng.sample(v, len(v)) for _, v in sorted(by_package.items())]
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop())
    return out


def markdown(report: dict[str, Any]) -> str:
    head = " | ".join(f"{k} exact | {k} sim" for k in KIND_LABELS)
    lines = [
        f"| extra context | {head} |",
        "|---|" + "---:|---:|" * len(KIND_LABELS),
    ]
    for label in ("without", "with"):
        cells = []
        for k in KIND_LABELS:
            s = report[label][k]
            cells += [f"{100 * s['exact']:.1f}%", f"{s['similarity']:.3f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    counts = ", ".join(f"{k} {n}" for k, n in report["cases"].items())
    lines.append("")
    lines.append(
        f"holes: {counts}; cross-file prompts that carried the defining module: "
        f"{100 * report['cross_file_prompts_with_the_module']:.0f}%"
    )
    if "tokens_per_generation" in report["with"]:
        lines.append(
            "tokens decoded per generation (share that ran to the token limit): "
            + ", ".join(
                f"{label} {report[label]['tokens_per_generation']:.1f}"
                f" ({100 * report[label]['at_token_limit']:.1f}%)"
                for label in ("without", "with")
            )
        )
    keys: dict[str, float] | None = report.get("second_keystroke")
    if keys:
        lines.append(
            f"second keystroke, prompt tokens fed (of the prompt's): without extra context "
            f"{keys['without_fed']:.1f} of {keys['without_prompt']:.0f}, with it "
            f"{keys['with_fed']:.1f} of {keys['with_prompt']:.0f}"
        )
    return "\n".join(lines)
