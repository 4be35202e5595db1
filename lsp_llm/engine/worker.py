"""The one inference thread, and the asyncio face the server uses.

Requests enter a queue; the thread runs them one at a time through the `Decoder` and
hands each event to the request's sink; `streaming.EventStream` carries them to the
server's event loop. A newer request of the same `group` supersedes (cancels) older
queued or running ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from lsp_llm.generation.streaming import EventStream, Groups, Sink, wait_done
from lsp_llm.generation.types import (
    Done,
    Event,
    GenerationError,
    GenerationRequest,
    Lane,
    finished,
)

if TYPE_CHECKING:
    from lsp_llm.engine.decoding import Decoder
    from lsp_llm.engine.load.loading import LoadedModel
    from lsp_llm.generation.tokens import Tokenizer

logger = logging.getLogger(__name__)


class Job:
    def __init__(self, request: GenerationRequest, sink: Sink) -> None:
        self.request = request
        self.sink = sink
        self.cancelled = threading.Event()
        self.t_submit = time.perf_counter()
        self.finished = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()


class InferenceWorker:
    """Runs `decoder.run` for each job on a single daemon thread.

    Interactive jobs go first: while a background job (a chat) decodes, the decoder pauses
    it between two forward passes to run the interactive jobs that came meanwhile (each
    lane has its own KV cache, so both go on where they were). A completion asked for
    during a long chat, from any session of a daemon, therefore waits at most one decoding
    step (or one prefill chunk) of it. Background work is never starved: each pause runs
    the interactive jobs waiting when it began, then the chat takes a step."""

    def __init__(self, decoder: Decoder, name: str = "lsp-llm-inference") -> None:
        self.decoder = decoder
        self._ready = threading.Condition()
        self._waiting: dict[Lane, deque[Job]] = {"interactive": deque(), "background": deque()}
        self._closing = False
        self._running: list[Job] = []
        """The job running, and below it a background job paused for it."""
        self._groups = Groups()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest, sink: Sink) -> Job:
        job = Job(request, sink)
        with self._ready:
            if self._closing:  # nothing will run it: it ends at once, cancelled
                job.cancel()
                self._deliver(job, _cancelled_before_start(job))
                job.finished.set()
                return job
            self._groups.start(request.group, job)
            self._waiting[request.lane].append(job)
            self._ready.notify()
        return job

    def close(self, timeout: float = 10.0) -> None:
        self._groups.cancel_all()
        with self._ready:
            self._closing = True
            for jobs in self._waiting.values():
                for job in jobs:
                    job.cancel()
            for job in self._running:  # a chat has no group: cancel it here
                job.cancel()
            self._ready.notify()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _next(self, lanes: tuple[Lane, ...], block: bool) -> Job | None:
        """The oldest waiting job of the first lane in `lanes` that has one; with `block`,
        wait for one (None once closing and nothing is left)."""
        with self._ready:
            while True:
                for lane in lanes:
                    if self._waiting[lane]:
                        return self._waiting[lane].popleft()
                if not block or self._closing:
                    return None
                self._ready.wait()

    def _loop(self) -> None:
        # After an interactive job, a waiting background job starts: it then pauses at its
        # first step for the interactive jobs waiting by then. Always taking interactive
        # jobs first would never start a chat while the user types.
        owed = False
        while True:
            lanes: tuple[Lane, ...] = ("interactive", "background")
            job = self._next(lanes[::-1] if owed else lanes, block=True)
            if job is None:
                return
            owed = job.request.lane == "interactive"
            self._process(job)

    def _let_interactive_run(self) -> None:
        """Called by a background job's decoder between forward passes: runs the
        interactive jobs waiting now, not those that come meanwhile, so the background job
        still makes a step between two rounds of them (a chat goes on, slowly, while the
        user types, and a cancelled one ends) instead of waiting for the typing to stop."""
        with self._ready:
            waiting = len(self._waiting["interactive"])
        for _ in range(waiting):
            job = self._next(("interactive",), block=False)
            if job is None:
                return
            self._process(job)

    def _process(self, job: Job) -> None:
        with self._ready:
            self._running.append(job)
            if self._closing:
                job.cancel()
        try:
            self._run(job)
        finally:
            with self._ready:
                self._running.remove(job)
            job.finished.set()
            self._groups.end(job.request.group, job)

    def _run(self, job: Job) -> None:
        if job.cancelled.is_set():
            self._deliver(job, _cancelled_before_start(job))
            return
        try:
            pause = self._let_interactive_run if job.request.lane == "background" else None
            done = self.decoder.run(
                job.request, job.cancelled, lambda ev: self._deliver(job, ev), job.t_submit, pause
            )
        except Exception as exc:  # a failing request must not take the thread down
            logger.exception("generation failed")
            self._deliver(job, GenerationError(_describe(exc)))
            return
        self._deliver(job, done)

    def _deliver(self, job: Job, event: Event) -> None:
        try:
            job.sink(event)
        except Exception:  # the reader went away (closed loop): stop generating for it
            logger.debug("event sink failed; cancelling its request", exc_info=True)
            job.cancel()


def _cancelled_before_start(job: Job) -> Done:
    """It waited in the queue the whole time: queue time is all its time."""
    return finished(
        "cancelled",
        "",
        prompt_tokens=len(job.request.prompt_ids),
        completion_tokens=0,
        submitted=job.t_submit,
        started=time.perf_counter(),
    )


def _describe(exc: Exception) -> str:
    text = str(exc)
    if "out of memory" in text.lower():
        return (
            "the device ran out of memory during generation; try a smaller model, "
            "quantization 4bit, or a smaller context (completion.contextTokens)"
        )
    return f"generation failed: {type(exc).__name__}: {text}"


class Engine:
    """A loaded model behind one inference thread."""

    def __init__(self, loaded: LoadedModel) -> None:
        from lsp_llm.engine.cpu.packedweights import cpu_weights
        from lsp_llm.engine.decoding import Decoder

        self.loaded = loaded
        self.decoder = Decoder(
            loaded.model,
            loaded.tokenizer,
            loaded.draft_model,
            allow_draft_in_auto=not loaded.is_moe,
            weights=cpu_weights(loaded.quantization) if loaded.device == "cpu" else "float",
            draft_vocab=loaded.draft_vocab,
        )
        if loaded.compile:
            cannot = self.decoder.compile_decode_step()
            if cannot:
                # a copy: engines made from one `LoadedModel` (the bench) keep their own
                self.loaded = replace(loaded, warnings=[*loaded.warnings, cannot])
        self.decoder.warm_up()
        self.worker = InferenceWorker(self.decoder)

    @property
    def tokenizer(self) -> Tokenizer:
        return self.loaded.tokenizer

    def stream(self, request: GenerationRequest, deltas: bool = True) -> EventStream:
        return EventStream(self.worker, request, deltas)

    def generate(
        self, request: GenerationRequest, on_delta: Callable[[str], None] | None = None
    ) -> Done:
        """Blocking helper for scripts and benchmarks: run on the inference thread, wait."""
        return wait_done(self.worker, request, on_delta)

    def close(self) -> None:
        self.worker.close()
