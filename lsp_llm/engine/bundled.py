"""Where the bundled model pair (trained by this project, see lsp_llm/train) lives inside
the installed package."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def bundled_model_dir() -> Path:
    return MODELS_DIR / "bundled"


def bundled_draft_dir() -> Path:
    return MODELS_DIR / "bundled-draft"
