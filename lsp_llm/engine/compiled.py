"""A decoding step's layers compiled into one graph by `torch.compile`, on a CPU (the
`compile` setting).

Decoding feeds one token per pass. In eager PyTorch such a pass through SmolLM2's 30
layers is about 1,400 operator calls, and on a CPU each costs a few microseconds of
dispatch around little arithmetic: about a third of a 21 ms pass with int4 weights.
Inductor turns the pass into generated C++ that fuses the element-wise work (norms,
rotary embedding, activations, residual adds) between the matrix products and calls
those without Python in between.

Measured on this project's 2-core CPU (SmolLM2, int4, 2 threads, one token after 100 /
1,400 tokens of context): 20.2 → 15.4 ms and 26.4 → 21.4 ms per pass, the same logits.
The price is compiling: 69 s the first time on that CPU, 12 s on later starts (inductor
keeps what it generated in its cache directory), paid during warm-up at load. Compiling
one layer and calling it 30 times compiles in 10 s but gains almost nothing (the call
overhead per compiled region is about what it saves).

Only one-token passes run compiled; passes over several tokens (a prompt, a speculative
verification) stay eager. The cache length is symbolic in the graph, so one compilation
serves every position and every cache over the same model. Without a C++ compiler, or
when compiling fails for any reason, decoding stays eager and a warning says why.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable

import torch

logger = logging.getLogger(__name__)


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would call (`CXX`, else g++ / c++ / clang++), if present."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


class CompiledStep:
    """`fn` compiled on its first call; after a failure it stays eager for good (`run`
    returns None), so a broken toolchain costs one warning, not every request."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.compiled = torch.compile(fn, dynamic=True, fullgraph=True)
        self.failed: str | None = None
        """Why compiling failed, once it has."""

    def run(self, *args: object) -> torch.Tensor | None:
        if self.failed is not None:
            return None
        try:
            # floats (norm epsilon, attention scale) stay constants: made symbolic, they
            # cost a second tracing of the whole pass
            with torch._dynamo.config.patch(specialize_float=True):
                return self.compiled(*args)
        except Exception as exc:  # any compiler fault: the eager pass computes the same
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            self.failed = f"{type(exc).__name__}: {first}"
            logger.warning("compiling the decoding step failed, decoding eagerly: %s", self.failed)
            return None
