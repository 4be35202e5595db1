"""The weight formats the benchmark runs our engine in: a `quantization` value (`none`,
`8bit`, `4bit`: float32, int8, int4 on a CPU), optionally with `+compile` (the `compile`
setting: the decoding step compiled by torch.compile)."""

from __future__ import annotations

import sys
from typing import Any

COMPILED = "+compile"
AS_SERVED = "auto"
"""The one format of a GGUF file served from its blocks: as `quantization: auto` serves it."""
LABELS = {"none": "", "8bit": "int8 ", "4bit": "int4 ", AS_SERVED: "gguf "}
"""Engine rows are named `engine {label}{mode}`; float32 keeps the plain name."""


def split(fmt: str) -> tuple[str, bool]:
    """(quantization, compile) of a format such as `4bit+compile`."""
    return fmt.removesuffix(COMPILED), fmt.endswith(COMPILED)


def label(fmt: str) -> str:
    """The row-name part for `fmt` (`int4 compiled ` for `4bit+compile`)."""
    q, compiled = split(fmt)
    return LABELS[q] + ("compiled " if compiled else "")


def weight_formats(requested: str, loaded: Any) -> list[str]:
    """The formats of `requested` (comma-separated) this model and machine allow."""
    from lsp_llm.engine.cpu.compiled import cxx_compiler
    from lsp_llm.engine.load.loading import cpu_quantization

    if str(loaded.quantization).startswith("gguf"):
        # served from the file's own blocks: there is no float weight to pack or compile
        print(f"weights: {loaded.quantization} as the file holds them", file=sys.stderr, flush=True)
        return [AS_SERVED]
    formats = []
    for fmt in [f.strip() for f in requested.split(",") if f.strip()]:
        q, compiled = split(fmt)
        on_cpu = loaded.device == "cpu"
        if q not in LABELS or not (
            q == "none" or (on_cpu and cpu_quantization(q, loaded.model)[0] == q)
        ):
            why = f"not available for this model on {loaded.device}"
        elif compiled and not (on_cpu and cxx_compiler()):
            why = "compiling needs a CPU and a C++ compiler"
        else:
            formats.append(fmt)
            continue
        print(f"weights {fmt!r} left out: {why}", file=sys.stderr, flush=True)
    return formats or ["none"]
