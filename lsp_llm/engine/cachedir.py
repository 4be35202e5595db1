"""Where lsp-llm keeps what it builds and assembles: the user cache directory (models,
GGUF descriptions, compiled kernels), or `$LSP_LLM_CACHE_DIR`."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_root() -> Path:
    """lsp-llm's cache: `$LSP_LLM_CACHE_DIR`, else the platform's user cache directory."""
    if env := os.environ.get("LSP_LLM_CACHE_DIR"):
        return Path(env).expanduser()
    return user_cache()


def user_cache() -> Path:
    """lsp-llm's folder in the platform's user cache directory."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lsp-llm"
