"""A decoding step's layers compiled into one graph by `torch.compile`, on a CPU (the
`compile` setting).

Decoding feeds one token per pass. In eager PyTorch such a pass through SmolLM2's 30
layers is about 1,400 operator calls, and on a CPU each costs a few microseconds of
dispatch around little arithmetic: a good part of a pass with int4 weights.
Inductor turns the pass into generated C++ that fuses the element-wise work (norms,
rotary embedding, activations, residual adds) between the matrix products and calls
those without Python in between.

Logits equal the eager pass's to bfloat16's precision (the int4 kernels' activations;
float32 weights give float32's). A model as small as the bundled one gains nothing. The
price is compiling, paid at load: long the first time, shorter on later starts (inductor
keeps what it generated in lsp-llm's cache directory). Compiling one layer and calling it
for every layer compiles faster but gains almost nothing (the call overhead per compiled
region is about what it saves). Figures: docs/engine-decisions.md.

Only one-token passes run compiled; passes over several tokens (a prompt, a speculative
verification) stay eager. The position and the caches' capacity are the graph's only
symbolic sizes, so one compilation serves every position and every cache over the same
model; the model's own sizes are constants. Without a C++ compiler, or
when compiling fails for any reason, decoding stays eager and a warning says why.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import torch.fx.experimental._config as fx_config

logger = logging.getLogger(__name__)


def keep_in_cache(root: Path) -> None:
    """Keep inductor's generated code under `root` (lsp-llm's cache) rather than in /tmp,
    which a reboot empties: later starts then compile in seconds. An explicit
    `TORCHINDUCTOR_CACHE_DIR` wins."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "inductor"))


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would call (`CXX`, else g++ / c++ / clang++), if present."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


Dims = Callable[[tuple[object, ...]], list[tuple[torch.Tensor, int]]]
"""The tensor sizes of a call's arguments that vary between calls: (tensor, dim)."""


class CompiledStep:
    """`fn` compiled on its first call, with every size static but those `dynamic` names
    (one graph for all of them; a model's own sizes stay constants, so nothing that
    happens to equal them is guarded on). A compiler fault (or any fault before the first
    compiled call went through) turns it off for good: `run` then returns None and the
    caller runs the eager pass, so a broken toolchain costs one warning, not every
    request. A fault in a pass that compiled fine (out of memory) is raised as the eager
    pass would raise it."""

    def __init__(self, fn: Callable[..., torch.Tensor], dynamic: Dims) -> None:
        self.compiled = torch.compile(fn, dynamic=False, fullgraph=True)
        self.dynamic = dynamic
        self.ready = False
        self.failed: str | None = None
        """Why compiling failed, once it has."""

    def run(self, *args: object) -> torch.Tensor | None:
        if self.failed is not None:
            return None
        try:
            if not self.ready:
                for tensor, dim in self.dynamic(args):
                    torch._dynamo.mark_dynamic(tensor, dim)
            with (
                torch._dynamo.config.patch(
                    # one graph per model: room for the models one process loads in turn
                    recompile_limit=64,
                ),
                # two symbolic sizes that happen to be equal when compiling are not one
                fx_config.patch(use_duck_shape=False),  # type: ignore[attr-defined]
            ):
                out = self.compiled(*args)
        except Exception as exc:
            if self.ready and not _compiler_fault(exc):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.failed = f"{type(exc).__name__}: {first}"
            logger.warning("compiling the decoding step failed, decoding eagerly: %s", self.failed)
            return None
        self.ready = True
        return out


def _compiler_fault(exc: BaseException) -> bool:
    from torch._dynamo.exc import TorchDynamoException
    from torch._inductor.exc import InductorError

    return isinstance(exc, TorchDynamoException | InductorError)
