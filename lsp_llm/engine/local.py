"""The local engine as a `Backend`: a model loaded in this process (`engine.load.loading`),
behind its one inference thread (`engine.worker.Engine`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lsp_llm.generation.backend import GenerationStream, HealthListener, Progress, Serving
from lsp_llm.generation.streaming import Cancellable, Sink
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import Done, GenerationRequest

if TYPE_CHECKING:
    from lsp_llm.config import Settings
    from lsp_llm.engine.worker import Engine


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
        from lsp_llm.engine.load.loading import load
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
