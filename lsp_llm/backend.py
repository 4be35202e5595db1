"""The typed seam between the server and what generates text: a `Backend` takes
`GenerationRequest`s (built by `context/`) and yields streams of events (`TextDelta`,
then `Done` or `GenerationError`), and says what it serves and how its tokenizer reads.

`LocalBackend` is the local engine (`engine.worker.Engine`, one inference thread over a
loaded model) behind it; `remote.backend.RemoteBackend` is an engine reached over its
OpenAI-compatible HTTP API. `load_backend` picks one from the settings. No torch is
imported here until a local model is loaded, so the server imports it freely.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from lsp_llm.context.prompts import TokenizerInfo
from lsp_llm.engine.types import Done, Event, GenerationRequest
from lsp_llm.streaming import Cancellable, Sink

if TYPE_CHECKING:
    from lsp_llm.config import Settings
    from lsp_llm.engine.worker import Engine

Progress = Callable[[float, str], None]
HealthListener = Callable[[str | None], None]
"""Told the reason a backend cannot generate now, or None once it can again."""


@dataclass(frozen=True)
class Serving:
    """What a backend serves, as `lspLlm/status` reports it."""

    model: str
    draft_model: str | None = None
    device: str | None = None
    quantization: str | None = None
    warnings: tuple[str, ...] = ()
    """What is degraded (a draft model that failed to load): shown as a warning."""
    notice: str | None = None
    """What the user is told once it is ready (which default model was chosen)."""


class GenerationStream(Protocol):
    """One request's events; iterating ends after its `Done` or `GenerationError`, and a
    reader that stops early, or `cancel()`, stops the generation."""

    def cancel(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def result(self) -> Done:
        """The end of the stream, deltas ignored; raises `RuntimeError` on an error."""
        ...


class Backend(Protocol):
    @property
    def serving(self) -> Serving: ...

    @property
    def tokens(self) -> TokenizerInfo:
        """How prompts are tokenized and budgeted for this backend's model."""
        ...

    def stream(self, request: GenerationRequest, deltas: bool = True) -> GenerationStream:
        """Start `request`; with `deltas=False` only its end is delivered."""
        ...

    def submit(self, request: GenerationRequest, sink: Sink) -> Cancellable:
        """Start `request`, handing each event to `sink` from the backend's own thread (the
        primitive under `stream` and `generate`; the bench times events as they come)."""
        ...

    def generate(
        self, request: GenerationRequest, on_delta: Callable[[str], None] | None = None
    ) -> Done:
        """Blocking: run `request` to its end (for scripts, the eval and the bench)."""
        ...

    @property
    def health(self) -> str | None:
        """Why the backend cannot generate now (a remote engine down), or None."""
        ...

    def watch(self, listener: HealthListener) -> Callable[[], None]:
        """Hear about `health` changes (from any thread); returns the unsubscribe call."""
        ...

    def close(self) -> None: ...


def load_backend(settings: Settings, progress: Progress) -> Backend:
    """The backend `settings` ask for: the remote engine at `backend.url`, else the local
    model (blocking: call it from a worker thread)."""
    if settings.backend.url is not None:
        from lsp_llm.remote.backend import RemoteBackend

        return RemoteBackend.load(settings, progress)
    return LocalBackend.load(settings, progress)


class LocalBackend:
    """A model loaded in this process, behind its one inference thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        loaded = engine.loaded
        self.serving = Serving(
            model=loaded.name,
            draft_model=loaded.draft_name,
            device=loaded.device,
            quantization=loaded.quantization,
            warnings=tuple(loaded.warnings),
            notice=loaded.notice,
        )
        self.tokens = TokenizerInfo.of(loaded)

    @classmethod
    def load(cls, settings: Settings, progress: Progress) -> LocalBackend:
        """Load the model `settings` name (blocking: call it from a worker thread)."""
        from lsp_llm.engine.loading import load
        from lsp_llm.engine.worker import Engine

        loaded = load(settings, progress)
        backend = cls(Engine(loaded))
        if loaded.compile:
            progress(1.0, "model ready")
        return backend

    def stream(self, request: GenerationRequest, deltas: bool = True) -> GenerationStream:
        return self.engine.stream(request, deltas)

    def submit(self, request: GenerationRequest, sink: Sink) -> Cancellable:
        return self.engine.worker.submit(request, sink)

    def generate(
        self, request: GenerationRequest, on_delta: Callable[[str], None] | None = None
    ) -> Done:
        return self.engine.generate(request, on_delta)

    health: str | None = None
    """A model in this process is always reachable."""

    def watch(self, listener: HealthListener) -> Callable[[], None]:
        return lambda: None

    def close(self) -> None:
        self.engine.close()
