"""A real editor: Emacs's eglot (batch mode) gets a completion from lsp-llm through
completion-at-point and runs the "Add docstring" code action the way eglot runs a chosen
action (eglot 1.9 has no codeAction/resolve: the server's command path is what it uses)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.lsp_helpers import editor_env
from tests.test_server import SOURCE

pytestmark = pytest.mark.skipif(
    shutil.which("emacs") is None and not os.environ.get("CI"),
    reason="Emacs is not installed (apt-get install emacs-nox elpa-eglot)",
)


def drive(driver: str, model: Path, tmp_path: Path, **env: str) -> dict:
    """Run the batch-mode Emacs `driver` (tests/editors/) on geometry.py with lsp-llm
    serving `model`; what it wrote as JSON."""
    path = tmp_path / "geometry.py"
    path.write_text(SOURCE)
    out = tmp_path / "out.json"
    proc = subprocess.run(
        # -q, not -Q: Debian's site start-up puts the packaged eglot on the load path
        ["emacs", "--batch", "-q", "-l", str(Path(__file__).parent / "editors" / driver)],
        env={**editor_env(model, path, out), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.exists(), proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert proc.returncode == 0, (result, proc.stderr[-3000:])
    assert result["status"] == "ready"
    return result


def test_eglot_completion_and_code_action(tiny, tmp_path: Path):
    result = drive("eglot_client.el", tiny.target, tmp_path)
    assert result["line9_before"] == "    return 2 * "
    assert len(result["line9"]) > len("    return 2 * ")  # eglot inserted the suggestion
    assert "lsp-llm: Add docstring" in result["actions"]
    assert result["line5"].startswith('    """')  # the docstring line eglot inserted


def test_ghost_text_package(tiny, tmp_path: Path):
    """editors/emacs/lsp-llm.el over eglot: the suggestion is shown after the cursor, not
    written into the buffer; typing its next character keeps the rest on screen without a
    new request; TAB inserts it; a keystroke while a request is in flight sends
    `$/cancelRequest` and its late answer is never shown."""
    package = Path(__file__).parent.parent / "editors" / "emacs"
    result = drive("emacs_ghost.el", tiny.target, tmp_path, LSP_LLM_PACKAGE=str(package))
    before, ghost = result["before"], result["ghost"]
    assert before == "    return 2 * " and ghost
    assert result["shown"] == ghost
    assert result["line_while_shown"] == before  # on screen, not in the buffer
    assert result["tab_bound"] == "lsp-llm-accept"
    assert result["shown_after_typing"] == ghost[len(result["typed"]) :]
    assert result["pending_after_typing"] is False
    assert result["after_tab"] == before + ghost.split("\n")[0]
    assert result["shown_after_tab"] is False
    assert result["pending_before_keystroke"] is True
    assert result["pending_after_keystroke"] is False
    assert result["cancel_sent"] is True
    assert result["shown_after_cancel"] is False
