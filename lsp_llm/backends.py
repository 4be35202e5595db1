"""Which backend serves: `load_backend` builds the one the settings ask for. Apart from
the contract (`generation.backend`) so that no implementation imports its chooser. No torch
is imported here until a local model is loaded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsp_llm.generation.backend import Backend, Progress

if TYPE_CHECKING:
    from lsp_llm.config import Settings


def load_backend(settings: Settings, progress: Progress) -> Backend:
    """The backend `settings` ask for: the remote engine at `backend.url`, else the local
    model (blocking: call it from a worker thread)."""
    if settings.backend.url is not None:
        from lsp_llm.remote.backend import RemoteBackend

        return RemoteBackend.load(settings, progress)
    from lsp_llm.engine.local import LocalBackend

    return LocalBackend.load(settings, progress)
