"""The typed seam between the server and what generates text: a `Backend` takes
`GenerationRequest`s (built by `context/`) and yields streams of events (`TextDelta`,
then `Done` or `GenerationError`), and says what it serves and how its tokenizer reads.

Implemented by `engine.local.LocalBackend` (a model loaded in this process, behind one
inference thread) and `remote.backend.RemoteBackend` (an engine reached over its
OpenAI-compatible HTTP API); `lsp_llm.backends.load_backend` picks one from the settings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from lsp_llm.generation.streaming import Cancellable, Sink
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import Done, Event, GenerationRequest

Progress = Callable[[float, str], None]
"""Told how far a load has come (0 to 1) and what it is doing, from the loading thread."""
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
