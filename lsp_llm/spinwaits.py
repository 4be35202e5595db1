"""How long the OpenMP threads of a matrix product wait by spinning before they sleep
(GNU OpenMP, libgomp: Linux; other runtimes ignore the variable).

The CPU kernels and PyTorch share one OpenMP runtime (PyTorch's libgomp, loaded with
torch). At the end of every parallel region, a thread that is done spins until the others
are: libgomp's default is 300,000 spins, milliseconds. On a quiet machine that costs
nothing; on a busy one (a build, a browser, a second editor window's server) the thread
it waits for is descheduled and the spinning one holds the core it needs, once per region,
hundreds of regions per token. A short spin keeps the quiet speed and gives the core back
(docs/engine-decisions.md has the measurement; `lsp-llm bench --contention` repeats it).

libgomp reads its settings once, when it is loaded, so `lsp_llm/__init__.py` sets them
before anything imports torch. A user's own `GOMP_SPINCOUNT` or `OMP_WAIT_POLICY` is kept.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

SPIN_COUNT = "3000"
"""Spins before a waiting thread sleeps: chosen between libgomp's default and 1,000 by
measuring both sides (docs/engine-decisions.md)."""
LIBGOMP_DEFAULT = "300000"
"""libgomp's spin count when nothing is set (its manual), for measuring against."""


_set_here = False


def shorten_spin_waits(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Set `GOMP_SPINCOUNT` unless the user chose a spin count or wait policy; whether set."""
    global _set_here
    if "GOMP_SPINCOUNT" in environ or "OMP_WAIT_POLICY" in environ:
        return False
    environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    _set_here = environ is os.environ
    return True


def peer_environ() -> dict[str, str]:
    """This process's environment for another engine's process (llama.cpp, also built
    with OpenMP, measured beside ours): libgomp's default spin waits, as its own users
    have them, unless the user set the variable (then theirs, for both)."""
    env = dict(os.environ)
    if _set_here:
        env["GOMP_SPINCOUNT"] = LIBGOMP_DEFAULT
    return env
