"""`RemoteBackend`: the `backend.Backend` contract over an OpenAI-compatible engine.

The server builds prompts here (a tokenizer named by the `model` setting is loaded without
weights; with none, budgets count characters and chat goes to the engine's template) and
the engine generates. Requests run concurrently on one HTTP thread with its own event loop
(the engine batches them); a newer request of the same `group` cancels the older one, and
cancelling closes the HTTP stream so the engine stops. While the engine is unreachable
`health` holds the reason and a probe asks `/models` until it answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from lsp_llm.generation.backend import HealthListener, Progress, Serving
from lsp_llm.generation.streaming import EventStream, Groups, Sink, wait_done
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import (
    Done,
    Event,
    FinishReason,
    GenerationError,
    GenerationRequest,
    TextDelta,
    finished,
)
from lsp_llm.remote.client import (
    CONNECT_TIMEOUT_S,
    EngineFailed,
    EngineRefused,
    EngineUnreachable,
    OpenAIClient,
)
from lsp_llm.remote.generation import TextRun, request_body

if TYPE_CHECKING:
    from lsp_llm.config import BackendSettings, Settings

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S = 2.0
"""How often an unreachable engine is asked again whether it is back."""


class _Job:
    def __init__(self, request: GenerationRequest) -> None:
        self.request = request
        self.cancelled = threading.Event()
        self.future: concurrent.futures.Future[None] | None = None

    def cancel(self) -> None:
        self.cancelled.set()
        if self.future is not None:
            self.future.cancel()  # thread-safe: cancels the task on the HTTP loop


class RemoteBackend:
    """An engine reached over HTTP; see the module docstring."""

    def __init__(
        self, settings: BackendSettings, tokens: TokenizerInfo, tokenizer: str | None = None
    ) -> None:
        assert settings.url is not None
        self.url = settings.url
        self.model = settings.model
        self.tokens = tokens
        self.tokenizer_name = tokenizer
        self.health: str | None = None
        self.warnings: list[str] = []
        self._listeners: list[HealthListener] = []
        self._lock = threading.Lock()
        self._groups = Groups()
        self._jobs: set[_Job] = set()
        self._probe: asyncio.Task[None] | None = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="lsp-llm-remote", daemon=True
        )
        self._thread.start()
        self._client = OpenAIClient(self.url, settings.key())

    @classmethod
    def load(cls, settings: Settings, progress: Progress) -> RemoteBackend:
        """The backend for `settings.backend`; loads the tokenizer `settings.model` names
        (no weights) and asks the engine what it serves. An engine that is down does not
        fail the load: `health` says why, and it is asked again until it answers."""
        from lsp_llm.engine.load.loading import load_tokenizer

        if settings.model is not None:
            progress(0.1, f"loading the tokenizer of {settings.model} (no weights)")
            loaded = load_tokenizer(settings, progress)
            tokens = TokenizerInfo(loaded.tokenizer, loaded.context_window, loaded.trained_spm)
            name: str | None = loaded.name
        else:
            tokens, name = TokenizerInfo.by_characters(), None
        backend = cls(settings.backend, tokens, name)
        progress(0.9, f"asking {backend.url} what it serves")
        backend.check()
        return backend

    @property
    def serving(self) -> Serving:
        model = self.model or "the engine's model"
        how = (
            f"prompts with the {self.tokenizer_name} tokenizer"
            if self.tokenizer_name
            else (
                "no tokenizer set (character budgets; set lspLlm.model for FIM and exact budgets)"
            )
        )
        return Serving(
            model=model,
            device=f"remote {self.url}",
            warnings=tuple(self.warnings),
            notice=f"serving {model} from the engine at {self.url}; {how}",
        )

    # -- health ------------------------------------------------------------------------
    def check(self) -> None:
        """Blocking: ask the engine which models it serves (names the default one)."""
        future = asyncio.run_coroutine_threadsafe(self._check(), self._loop)
        try:
            future.result(timeout=CONNECT_TIMEOUT_S * 2)
        except concurrent.futures.TimeoutError:
            future.cancel()
            reason = f"the engine at {self.url} did not answer in time"
            self._loop.call_soon_threadsafe(self._set_health, reason)

    async def _check(self) -> None:
        try:
            served = await self._client.models()
        except (EngineUnreachable, EngineRefused) as exc:
            self._set_health(str(exc))
            return
        if self.model is None and served:
            self.model = served[0]
        elif served and self.model not in served:
            warning = f"the engine at {self.url} lists {', '.join(served[:5])}, not {self.model!r}"
            if warning not in self.warnings:
                self.warnings.append(warning)
        self._set_health(None)

    def watch(self, listener: HealthListener) -> Callable[[], None]:
        """Call `listener(reason or None)` (from the HTTP thread) when health changes."""
        with self._lock:
            self._listeners.append(listener)

        def stop() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return stop

    def _set_health(self, reason: str | None) -> None:
        """On the HTTP loop only (so one probe runs at a time)."""
        if reason == self.health:
            return
        self.health = reason
        logger.info("engine at %s: %s", self.url, reason or "reachable")
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(reason)
            except Exception:
                logger.debug("health listener failed", exc_info=True)
        if reason is not None and (self._probe is None or self._probe.done()):
            self._probe = self._loop.create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        while self.health is not None:
            await asyncio.sleep(PROBE_INTERVAL_S)
            await self._check()

    # -- generation ----------------------------------------------------------------------
    def submit(self, request: GenerationRequest, sink: Sink) -> _Job:
        job = _Job(request)
        if self._closed:
            sink(GenerationError("the remote backend is closed (the model is being changed)"))
            return job
        self._groups.start(request.group, job)
        with self._lock:
            self._jobs.add(job)
        job.future = asyncio.run_coroutine_threadsafe(self._run(job, sink), self._loop)
        if job.cancelled.is_set():
            job.future.cancel()
        return job

    def stream(self, request: GenerationRequest, deltas: bool = True) -> EventStream:
        return EventStream(self, request, deltas)

    def generate(
        self, request: GenerationRequest, on_delta: Callable[[str], None] | None = None
    ) -> Done:
        return wait_done(self, request, on_delta)

    async def _run(self, job: _Job, sink: Sink) -> None:
        request = job.request
        t0 = time.perf_counter()
        run = TextRun(request)
        first: float | None = None
        prompt_tokens: int | None = None
        completion_tokens: int | None = None
        reason: FinishReason = "stop"

        def done(why: FinishReason, text: str) -> Done:
            made = completion_tokens if completion_tokens is not None else run.pieces
            return finished(
                why,
                text,
                prompt_tokens=prompt_tokens or len(request.prompt_ids),
                completion_tokens=made,
                submitted=t0,
                first=first,
            )

        try:
            if job.cancelled.is_set():
                raise asyncio.CancelledError
            path, body = request_body(request, self.model)
            async with contextlib.aclosing(self._client.stream(path, body)) as chunks:
                async for chunk in chunks:
                    if first is None and chunk.text:
                        first = time.perf_counter()
                    delta = run.feed(chunk.text)
                    if delta:
                        self._deliver(job, sink, TextDelta(delta))
                    prompt_tokens = chunk.prompt_tokens or prompt_tokens
                    completion_tokens = chunk.completion_tokens or completion_tokens
                    if chunk.finish_reason == "length":
                        reason = "length"
                    if run.final is not None:
                        break  # a stop rule fired: leaving closes the stream
            self._set_health(None)
            if run.final is not None:
                reason = "stop"  # our rule ended it, whatever the engine said
            text, rest = run.finish()
            if rest:
                self._deliver(job, sink, TextDelta(rest))
            self._deliver(job, sink, done(reason, text))
        except asyncio.CancelledError:
            self._deliver(job, sink, done("cancelled", run.visible[: run.emitted]))
        except EngineUnreachable as exc:
            self._set_health(str(exc))
            self._deliver(job, sink, GenerationError(str(exc)))
        except EngineRefused as exc:
            self._deliver(job, sink, GenerationError(f"the engine refused the request: {exc}"))
        except EngineFailed as exc:
            self._deliver(job, sink, GenerationError(str(exc)))
        except Exception as exc:  # a failing request must not take the thread down
            logger.exception("remote generation failed")
            self._deliver(job, sink, GenerationError(f"{type(exc).__name__}: {exc}"))
        finally:
            with self._lock:
                self._jobs.discard(job)
            self._groups.end(request.group, job)

    def _deliver(self, job: _Job, sink: Sink, event: Event) -> None:
        try:
            sink(event)
        except Exception:  # the reader went away: stop generating for it
            logger.debug("event sink failed; cancelling its request", exc_info=True)
            job.cancel()

    def close(self) -> None:
        """Cancel what runs (each gets its `Done("cancelled")`), close the connections, stop
        the HTTP thread. Later submissions get an error at once."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            jobs = list(self._jobs)
            self._listeners.clear()
        for job in jobs:
            job.cancel()
        futures = [job.future for job in jobs if job.future is not None]
        concurrent.futures.wait(futures, timeout=5)

        async def shut() -> None:
            if self._probe is not None:
                self._probe.cancel()
            await self._client.aclose()

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        except Exception:
            logger.debug("closing the HTTP client failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()
