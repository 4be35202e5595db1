"""Loaded engines shared by the LSP sessions of one process.

Over stdio a process has one session. A `--tcp` daemon has one session per connected
editor, and sessions that ask for the same model settings share one loaded engine (one
inference thread), which is the point of a daemon on one GPU. An engine nobody uses stays
loaded (`keep_idle`, the most recently released first) so the next editor to connect does
not wait for a load; older idle engines are closed, and all idle ones before a different
model loads (so a reload does not hold two models in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from lsp_llm.backends import load_backend
from lsp_llm.config import Settings, flagged
from lsp_llm.generation.backend import Backend, Progress

logger = logging.getLogger(__name__)

MODEL_FIELDS = flagged("reload")
"""The settings that pick what gets loaded; sessions equal in these share an engine."""


def model_key(settings: Settings) -> tuple[object, ...]:
    return tuple(getattr(settings, f) for f in MODEL_FIELDS)


Loader = Callable[[Settings, Progress], Backend]
"""Runs in a thread of its own: the backend for some settings."""


async def in_own_thread(loader: Loader, settings: Settings, progress: Progress) -> Backend:
    """`loader(settings, progress)` in a thread started for it, which ends with it.

    Not the event loop's executor, whose threads stay: loading runs PyTorch operations
    and warms the engine up, so the loading thread gets an OpenMP team of its own, and
    libgomp, counting more threads than CPUs while that thread lives, makes its workers
    sleep between the parallel pieces of the inference thread's passes instead of
    spinning, which made every pass slower (docs/engine-decisions.md)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Backend] = loop.create_future()

    def loaded(backend: Backend) -> None:
        if done.cancelled():
            backend.close()  # nobody waits for it any more
        else:
            done.set_result(backend)

    def failed(error: BaseException) -> None:
        if not done.cancelled():
            done.set_exception(error)

    def run() -> None:
        try:
            backend = loader(settings, progress)
        except BaseException as exc:  # reaches the awaiting session
            report: Callable[[], None] = functools.partial(failed, exc)
        else:
            report = functools.partial(loaded, backend)
        with contextlib.suppress(RuntimeError):  # the event loop closed: the server exits
            loop.call_soon_threadsafe(report)

    threading.Thread(target=run, name="lsp-llm-load", daemon=True).start()
    return await done


def _failed(task: asyncio.Task[Backend]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


def _engine(task: asyncio.Task[Backend]) -> Backend | None:
    """The backend a finished, successful load gave; else None."""
    return None if not task.done() or _failed(task) else task.result()


@dataclass
class _Entry:
    loading: asyncio.Task[Backend]
    users: int = 0
    idle_since: int = 0
    listeners: list[Progress] = field(default_factory=list)


class EnginePool:
    def __init__(self, keep_idle: int = 1, loader: Loader = load_backend) -> None:
        self.keep_idle = keep_idle
        self._loader = loader
        self._entries: dict[tuple[object, ...], _Entry] = {}
        self._clock = 0

    async def acquire(self, settings: Settings, progress: Progress) -> Backend:
        """The backend for `settings`, loading it unless a session
        already did; `progress(fraction, message)` hears about the load on the event loop.
        Raises what loading raised. Pair every successful call with `release`."""
        key = model_key(settings)
        entry = self._entries.get(key)
        if entry is None or _failed(entry.loading):
            for idle in self._evict(keep=0):  # free idle models before loading another
                await asyncio.to_thread(idle.close)
            entry = self._entries.get(key)  # another session may have started it meanwhile
        if entry is None or _failed(entry.loading):
            loop = asyncio.get_running_loop()
            listeners: list[Progress] = []

            def report(fraction: float, message: str) -> None:
                for listener in list(listeners):
                    loop.call_soon_threadsafe(listener, fraction, message)

            task = loop.create_task(in_own_thread(self._loader, settings, report))
            entry = self._entries[key] = _Entry(task, listeners=listeners)
        entry.users += 1
        entry.listeners.append(progress)
        try:
            return await asyncio.shield(entry.loading)
        except BaseException:
            entry.users -= 1
            if _failed(entry.loading) and self._entries.get(key) is entry:
                del self._entries[key]  # the next session tries again
            raise
        finally:
            if progress in entry.listeners:
                entry.listeners.remove(progress)

    def release(self, engine: Backend) -> None:
        """A session stopped using `engine`; idle engines past `keep_idle` are closed."""
        for entry in self._entries.values():
            if _engine(entry.loading) is engine:
                entry.users = max(0, entry.users - 1)
                self._clock += 1
                entry.idle_since = self._clock
                break
        for idle in self._evict(keep=self.keep_idle):
            try:  # joining its thread waits for a forward pass: not on the event loop
                asyncio.get_running_loop().run_in_executor(None, idle.close)
            except RuntimeError:
                idle.close()

    def _evict(self, keep: int) -> list[Backend]:
        """Drop idle engines but the `keep` most recently released; the caller closes the
        returned engines."""
        idle = [(k, e) for k, e in self._entries.items() if e.users == 0 and e.loading.done()]
        idle.sort(key=lambda item: item[1].idle_since, reverse=True)
        dropped = []
        for key, entry in idle[keep:]:
            del self._entries[key]
            loaded = _engine(entry.loading)
            if loaded is not None:
                logger.info("closing an idle model: %s", key[0] or "the default model")
                dropped.append(loaded)
        return dropped

    def loaded(self) -> list[Backend]:
        """The engines loaded now (for tests and logs)."""
        engines = (_engine(e.loading) for e in self._entries.values())
        return [e for e in engines if e is not None]

    def close(self) -> None:
        """Close every loaded engine (the process is ending)."""
        for engine in self.loaded():
            engine.close()
        self._entries.clear()


POOL = EnginePool()
"""The process's pool."""
