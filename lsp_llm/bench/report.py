"""Aggregating timed samples into per-mode figures, the targets they are held to, and the
Markdown table and PNG chart the benchmark prints and writes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_llm.bench.runners import Sample

BASELINE = "generate()"


@dataclass
class ModeTally:
    samples: list[Sample] = field(default_factory=list)
    identical: list[bool] = field(default_factory=list)

    def add(self, sample: Sample, reference: tuple[int, ...]) -> None:
        self.samples.append(sample)
        self.identical.append(sample.tokens == reference)

    def summary(self) -> dict[str, Any]:
        s = self.samples
        decode_tokens = sum(max(0, len(x.tokens) - 1) for x in s)
        decode_s = sum(max(1e-9, x.total_s - x.ttft_s) for x in s)
        out: dict[str, Any] = {
            "cases": len(s),
            "ttft_ms": statistics.median(x.ttft_s * 1000 for x in s) if s else 0.0,
            "tokens_per_s": decode_tokens / decode_s if s else 0.0,
            "tokens_per_forward": None,
            "acceptance": None,
            "identical": sum(self.identical) / len(self.identical) if s else 0.0,
        }
        if s and all(x.target_forwards for x in s):
            out["tokens_per_forward"] = sum(len(x.tokens) for x in s) / sum(
                x.target_forwards or 0 for x in s
            )
        drafted = sum(x.drafted or 0 for x in s)
        if any(x.drafted is not None for x in s) and drafted:
            out["acceptance"] = sum(x.accepted or 0 for x in s) / drafted
        return out


def with_ratios(modes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    base = modes.get(BASELINE, {}).get("tokens_per_s") or 0.0
    for figures in modes.values():
        figures["ratio"] = figures["tokens_per_s"] / base if base else None
    return modes


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def mode_table(modes: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| mode | TTFT ms | tok/s | × generate() | tokens / target forward | acceptance"
        " | same as greedy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, f in modes.items():
        acceptance = None if f["acceptance"] is None else 100 * f["acceptance"]
        lines.append(
            f"| {name} | {f['ttft_ms']:.1f} | {f['tokens_per_s']:.0f} | {_fmt(f['ratio'], '.2f')}"
            f" | {_fmt(f['tokens_per_forward'], '.2f')} | {_fmt(acceptance, '.0f', '%')}"
            f" | {100 * f['identical']:.0f}% |"
        )
    return "\n".join(lines)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    out: list[dict[str, Any]] = []
    modes = report["modes"].get("completion", {})
    ours = {k: v for k, v in modes.items() if k.startswith("engine ") and k != "engine off"}
    if ours and BASELINE in modes:
        best_name, best = max(ours.items(), key=lambda kv: kv[1]["tokens_per_s"])
        ratio = best["ratio"] or 0.0
        out.append(
            {
                "target": f"best mode ({best_name}) >= 2.0x generate(), identical text",
                "value": f"{ratio:.2f}x, {100 * best['identical']:.0f}% identical",
                "met": ratio >= 2.0 and best["identical"] == 1.0,
            }
        )
        assisted = modes.get("generate() assisted")
        if assisted and assisted["tokens_per_s"]:
            r = best["tokens_per_s"] / assisted["tokens_per_s"]
            out.append(
                {
                    "target": f"best mode ({best_name}) >= 1.3x generate() assisted",
                    "value": f"{r:.2f}x",
                    "met": r >= 1.3,
                }
            )
        for peer in ("llama.cpp", "llama.cpp prompt lookup"):
            if peer in modes and modes[peer]["tokens_per_s"]:
                r = best["tokens_per_s"] / modes[peer]["tokens_per_s"]
                out.append({"target": f"vs {peer} (reported)", "value": f"{r:.2f}x", "met": None})
    if "cancel" in report:
        c = report["cancel"]
        out.append(
            {
                "target": "cancel: idle within 1 forward pass",
                "value": f"{c['max_forwards_after_cancel']} passes, {c['max_ms']:.1f} ms max",
                "met": c["max_forwards_after_cancel"] <= 1,
            }
        )
    for label, e in report.get("edit", {}).items():
        served = e.get("served", True)
        out.append(
            {
                "target": f"second request after a one-line edit <= 0.25x ({label}"
                f"{'' if served else '; not the order served, for comparison'})",
                "value": f"{e['ratio_with_reuse']:.2f}x (without reuse "
                f"{e['ratio_without_reuse']:.2f}x)",
                "met": e["ratio_with_reuse"] <= 0.25 if served else None,
            }
        )
    if "protocol" in report:
        p = report["protocol"]
        out.append(
            {
                "target": "protocol overhead <= 1.10x",
                "value": f"{p['overhead_ratio']:.3f}x",
                "met": p["overhead_ratio"] <= 1.10,
            }
        )
    return out


def markdown(report: dict[str, Any]) -> str:
    parts = []
    for kind, modes in report["modes"].items():
        n = report["tokens"][kind]
        parts += [
            f"**{kind}** ({report['cases'][kind]} prompts, {n} new tokens each, greedy, "
            f"{report['threads']} thread(s))",
            "",
            mode_table(modes),
            "",
        ]
    if "cancel" in report:
        c = report["cancel"]
        parts.append(
            f"- cancel (engine): idle {c['median_ms']:.1f} ms median / {c['max_ms']:.1f} ms max"
            f" after the cancel, at most {c['max_forwards_after_cancel']} forward pass(es)"
        )
    for label, e in report.get("edit", {}).items():
        parts.append(
            f"- one-line edit in a {e['document_lines']}-line file ({label}, "
            f"{e['prompt_tokens']:.0f}-token prompt, {e['reused_tokens']:.0f} reused): first "
            f"request {e['first_ms']:.1f} ms to first token; second {e['second_with_reuse_ms']:.1f}"
            f" ms with prefix reuse ({e['ratio_with_reuse']:.2f}x), "
            f"{e['second_without_reuse_ms']:.1f} ms without ({e['ratio_without_reuse']:.2f}x)"
            + (
                f"; one more keystroke then {e['keystroke_ms']:.1f} ms "
                f"({e['ratio_keystroke']:.2f}x)"
                if "keystroke_ms" in e
                else ""
            )
        )
    if "protocol" in report:
        p = report["protocol"]
        parts.append(
            f"- protocol: inline completion {p['server_median_ms']:.1f} ms through `lsp-llm serve`"
            f" vs {p['engine_median_ms']:.1f} ms in-process ({p['overhead_ratio']:.3f}x, median"
            f" of {p['requests']} paired ratios; ratio of the medians"
            f" {p['ratio_of_medians']:.3f}x; "
            f"{p['same_suggestion']}/{p['requests']} identical suggestions); "
            f"`$/cancelRequest` answered in {p['lsp_cancel_median_ms']:.1f} ms"
        )
        if p.get("chat_requests"):
            parts.append(
                f"- protocol: chat first streamed delta {p['chat_first_delta_server_ms']:.1f} ms"
                f" at the client of `lsp-llm serve` vs {p['chat_first_delta_engine_ms']:.1f} ms"
                f" in-process ({p['chat_first_delta_ratio']:.2f}x; {p['chat_same_reply']}/"
                f"{p['chat_requests']} identical replies)"
            )
    parts += ["", "| target | measured | met |", "|---|---|---|"]
    for t in report["targets"]:
        met = "reported" if t["met"] is None else ("yes" if t["met"] else "**no**")
        parts.append(f"| {t['target']} | {t['value']} | {met} |")
    return "\n".join(parts)


def chart(report: dict[str, Any], path: Path) -> None:
    """Tokens/s of every mode, one panel per prompt kind, each bar labelled with its ratio
    to plain `generate()`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(report["modes"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(6.5 * len(kinds), 4.2), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        modes = report["modes"][kind]
        names = list(modes)
        values = [modes[n]["tokens_per_s"] for n in names]
        colours = [
            "#4c72b0" if n.startswith("engine") else "#dd8452" if "llama" in n else "#8c8c8c"
            for n in names
        ]
        bars = ax.barh(names, values, color=colours)
        for bar, name in zip(bars, names, strict=True):
            ratio = modes[name]["ratio"]
            label = f" {bar.get_width():.0f}" + ("" if ratio is None else f" ({ratio:.2f}x)")
            ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, label, va="center")
        ax.invert_yaxis()
        ax.set_xlabel("tokens/s (decode, greedy)")
        ax.set_title(f"{kind}: {report['cases'][kind]} prompts x {report['tokens'][kind]} tokens")
        ax.set_xlim(0, max(values, default=1) * 1.35)
    fig.suptitle(
        f"{report['model']} + {report['draft_model']} on {report['device']}, "
        f"{report['threads']} thread(s)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
