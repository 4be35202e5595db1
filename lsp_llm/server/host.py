"""The model's lifetime on the server side: load in a background thread after
`initialized`, report progress and `lspLlm/status`, reload when the model settings
change, and let requests wait until the engine is ready."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from lsp_llm.config import Settings
from lsp_llm.engine.load.sources import AUTO, SourceError, check_spec, default_model
from lsp_llm.generation.backend import Backend
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.server.pool import POOL, EnginePool, model_key

logger = logging.getLogger(__name__)


class ModelUnavailable(Exception):
    """The model failed to load; the message says why."""


@dataclass
class Status:
    state: str  # loading | ready | busy | error
    model: str | None = None
    draft_model: str | None = None
    device: str | None = None
    quantization: str | None = None
    message: str | None = None
    level: Literal["warning", "info"] = "warning"
    """How a `ready` message is shown: `warning` (something is degraded) or `info`."""

    def to_wire(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "model": self.model,
            "draftModel": self.draft_model,
            "device": self.device,
            "quantization": self.quantization,
            "message": self.message,
        }


def model_settings_changed(old: Settings, new: Settings) -> bool:
    return model_key(old) != model_key(new)


class ModelHost:
    """Owns the engine. `on_status` and `on_progress(fraction, message)` are called on the
    event loop."""

    def __init__(
        self,
        on_status: Callable[[Status], None],
        on_progress: Callable[[float, str], None],
        pool: EnginePool = POOL,
    ) -> None:
        self.pool = pool
        self.on_status = on_status
        self.on_progress = on_progress
        self.engine: Backend | None = None
        self.info: TokenizerInfo | None = None
        """How the loaded model's tokenizer reads (prompts are built with it)."""
        self.warnings: list[str] = []
        self._unwatch: Callable[[], None] = lambda: None
        self._ready: asyncio.Future[Backend] | None = None
        self._task: asyncio.Task[None] | None = None
        self.status = Status("loading")
        self._loaded_with: Settings | None = None
        """The settings of the model serving (served again when a change fails to load)."""
        self.closed = False
        """The session ended: a load still running hands its engine straight back."""

    def set_status(self, status: Status) -> None:
        self.status = status
        self.on_status(status)

    def start(self, settings: Settings) -> asyncio.Task[None]:
        """(Re)load the model for `settings` in the background."""
        loop = asyncio.get_running_loop()
        previous = self._ready
        self._ready = loop.create_future()
        if previous is not None and not previous.done():
            previous.cancel()
        self._task = loop.create_task(self._load(settings, self._ready))
        return self._task

    async def ready(self) -> Backend:
        if self._ready is None:
            raise ModelUnavailable("the model is not loaded: the client has not sent initialized")
        return await asyncio.shield(self._ready)

    async def _load(self, settings: Settings, ready: asyncio.Future[Backend]) -> None:
        name = default_model() if settings.model in (None, AUTO) else settings.model
        old = self.engine
        if old is not None:
            # A model that cannot be loaded is refused before the serving one goes.
            problem = await asyncio.to_thread(_problem, settings)
            if problem is not None:
                logger.error("%s", problem)
                if not ready.done():  # (a cancelled one was superseded by a newer load)
                    ready.set_result(old)
                    serving = self._status_of(old)
                    still = f"{problem}; still serving {serving.model}"
                    self.set_status(replace(serving, message=still, level="warning"))
                return
        self.set_status(
            Status("loading", model=name, draft_model=settings.draft_model, message="loading model")
        )

        self.engine = None
        self._unwatch()
        if old is not None:
            self.pool.release(old)
        try:
            engine = await self.pool.acquire(settings, self.on_progress)
        except Exception as exc:
            from lsp_llm.engine.load.loading import ModelLoadError

            message = (
                str(exc)
                if isinstance(exc, ModelLoadError)
                else (f"could not load the model: {type(exc).__name__}: {exc}")
            )
            logger.error("%s", message)
            previous = self._loaded_with
            if (
                previous is not None
                and not self.closed
                and model_settings_changed(previous, settings)
            ):
                # It failed while loading (after the checks): the previous model serves again.
                try:
                    engine = await self.pool.acquire(previous, self.on_progress)
                except Exception:
                    logger.exception("the previous model could not be loaded again either")
                else:
                    self._serve(engine, ready, previous, f"{message}; serving the previous model")
                    return
            if not ready.done():
                ready.set_exception(ModelUnavailable(message))
                ready.exception()  # retrieved: waiting requests get it, no loop warning
            self.set_status(Status("error", model=name, message=message))
            return
        self._serve(engine, ready, settings)

    def _serve(
        self, engine: Backend, ready: asyncio.Future[Backend], settings: Settings, why: str = ""
    ) -> None:
        if ready.cancelled() or self.closed:  # superseded, or the session is over
            self.pool.release(engine)
            return
        self._loaded_with = settings
        self.engine, self.info = engine, engine.tokens
        self.warnings = list(engine.serving.warnings)
        loop = asyncio.get_running_loop()

        def heard(reason: str | None) -> None:  # from the backend's thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
                loop.call_soon_threadsafe(self._health_changed, engine)

        self._unwatch = engine.watch(heard)
        ready.set_result(engine)
        status = self._status_of(engine)
        self.set_status(replace(status, message=why, level="warning") if why else status)

    def _status_of(self, engine: Backend) -> Status:
        """`ready` with what it serves, or `error` while it cannot generate."""
        serving = engine.serving
        reason = engine.health
        return Status(
            "error" if reason else "ready",
            model=serving.model,
            draft_model=serving.draft_model,
            device=serving.device,
            quantization=serving.quantization,
            message=reason or "; ".join(serving.warnings) or serving.notice,
            level="warning" if serving.warnings else "info",
        )

    def _health_changed(self, engine: Backend) -> None:
        if engine is self.engine:
            self.set_status(self._status_of(engine))

    def close(self) -> None:
        """This session is over: its engine goes back to the pool (also one still loading,
        when it arrives), and the status is not reported any more."""
        self.closed = True
        self._unwatch()
        if self.engine is not None:
            self.pool.release(self.engine)
            self.engine = None


def _problem(settings: Settings) -> str | None:
    """Why `settings` name models that cannot be loaded, found without loading them."""
    try:
        check_spec(settings.model)
        check_spec(settings.draft_model)
    except SourceError as exc:
        return f"could not load the model: {exc}"
    return None
