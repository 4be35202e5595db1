"""Carrying one request's events from the thread that produces them (the local inference
thread, or the remote backend's HTTP thread) to its reader: an asyncio iterator on the
server's event loop (`EventStream`), or a blocking wait for scripts (`wait_done`).

A producer offers `submit(request, sink) -> Cancellable`: it calls `sink` once per event,
from any thread, and ends with a `Done` or a `GenerationError`.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from lsp_llm.generation.types import Done, Event, GenerationError, GenerationRequest

Sink = Callable[[Event], None]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Submits(Protocol):
    def submit(self, request: GenerationRequest, sink: Sink) -> Cancellable: ...


class Groups:
    """Superseding groups (`GenerationRequest.group`): a newer job of a group cancels the
    older one, as a keystroke supersedes the last inline completion of its document.
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, Cancellable] = {}

    def start(self, group: str | None, job: Cancellable) -> None:
        if group is None:
            return
        with self._lock:
            older = self._latest.get(group)
            if older is not None:
                older.cancel()
            self._latest[group] = job

    def end(self, group: str | None, job: Cancellable) -> None:
        with self._lock:
            if group is not None and self._latest.get(group) is job:
                del self._latest[group]

    def cancel_all(self) -> None:
        with self._lock:
            jobs = list(self._latest.values())
        for job in jobs:
            job.cancel()


class EventStream:
    """Async iterator over one request's events; `cancel()` stops its generation.

    With `deltas=False` only the end (a `Done` or `GenerationError`) crosses to the event
    loop: a caller that wants just the result (a completion) then does not wake the loop,
    and take the GIL from the producing thread, for every streamed piece."""

    def __init__(self, producer: Submits, request: GenerationRequest, deltas: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

        def sink(event: Event) -> None:
            if deltas or isinstance(event, Done | GenerationError):
                loop.call_soon_threadsafe(self._queue.put_nowait, event)

        self.job = producer.submit(request, sink)

    def cancel(self) -> None:
        self.job.cancel()

    async def __aiter__(self) -> AsyncIterator[Event]:
        try:
            while True:
                event = await self._queue.get()
                yield event
                if isinstance(event, Done | GenerationError):
                    return
        finally:
            self.job.cancel()  # a reader that stops early stops the generation too

    async def result(self) -> Done:
        """Wait for the end, ignoring deltas; raise on error."""
        async for event in self:
            if isinstance(event, Done):
                return event
            if isinstance(event, GenerationError):
                raise RuntimeError(event.message)
        raise RuntimeError("stream ended without a result")


def wait_done(
    producer: Submits, request: GenerationRequest, on_delta: Callable[[str], None] | None = None
) -> Done:
    """Blocking: run `request` to its end, handing each delta to `on_delta`; raise
    `RuntimeError` on an error (for scripts, the eval and the bench)."""
    events: queue.Queue[Event] = queue.Queue()
    producer.submit(request, events.put)
    while True:
        event = events.get()
        if isinstance(event, Done):
            return event
        if isinstance(event, GenerationError):
            raise RuntimeError(event.message)
        if on_delta is not None:
            on_delta(event.text)
