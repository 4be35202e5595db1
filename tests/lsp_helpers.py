"""A pytest-lsp client that also records our protocol: `lspLlm/status` notifications,
chat deltas sent as `$/progress` partial results, and `workspace/applyEdit` requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp import client as lsp_client

SERVER = [sys.executable, "-m", "lsp_llm", "serve"]


def server_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@contextlib.contextmanager
def tcp_daemon(*args: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`lsp-llm serve --tcp PORT` on a free loopback port, once it accepts connections (the
    probe connection closes at once, as a vanishing client would): its port and process.
    The daemon is stopped afterwards. Its token is where `lsp_llm.server.auth.token_path`
    says (ServerSession finds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [*SERVER, "--tcp", str(port), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        env=server_env(),
    )
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=60).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the TCP server did not listen")
        # The daemon listens first and writes its token just after (so that a second daemon
        # on a taken port fails before overwriting the first's): wait for the token too.
        from lsp_llm.server.auth import read_token, token_path

        named = list(args)
        token_file = (
            Path(named[named.index("--token-file") + 1])
            if "--token-file" in named
            else token_path(port)
        )
        for _ in range(300):
            if read_token(token_file) is not None or proc.poll() is not None:
                break
            time.sleep(0.05)
        yield port, proc
    finally:
        proc.terminate()  # the daemon ends cleanly on SIGTERM (removing its token file)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def editor_env(model: Path, file: Path, out: Path) -> dict[str, str]:
    """The environment of the real-editor drivers in tests/editors/: the server command,
    the file to open, where to write their JSON result, settings for `model`."""
    short = {"maxNewTokens": 24}
    settings = {"model": str(model), "completion": short, "chat": short}
    return {
        **server_env(),
        "LSP_LLM_CMD": json.dumps(SERVER),
        "LSP_LLM_FILE": str(file),
        "LSP_LLM_OUT": str(out),
        "LSP_LLM_SETTINGS": json.dumps(settings),
    }


def plain(value: Any) -> Any:
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Recorder:
    def __init__(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.partials: dict[str, list[str]] = defaultdict(list)
        self.applied: list[types.WorkspaceEdit] = []
        self.changed = asyncio.Event()

    async def wait_status(self, state: str, after: int = 0, timeout: float = 120) -> dict:
        async def wait() -> dict:
            while True:
                for status in self.statuses[after:]:
                    if status["state"] == state:
                        return status
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), timeout)


def make_client() -> LanguageClient:
    client = LanguageClient(converter_factory=default_converter)
    rec = Recorder()
    client.rec = rec  # type: ignore[attr-defined]
    for method in (
        types.WORKSPACE_CONFIGURATION,
        types.WINDOW_WORK_DONE_PROGRESS_CREATE,
        types.WINDOW_LOG_MESSAGE,
        types.WINDOW_SHOW_MESSAGE,
    ):
        client.feature(method)(_default(method))

    @client.feature(types.PROGRESS)
    def progress(ls: LanguageClient, params: types.ProgressParams) -> None:
        value = params.value
        if isinstance(value, dict) and "delta" in value:
            rec.partials[str(params.token)].append(value["delta"])
            rec.changed.set()
            return
        lsp_client.progress(ls, params)

    @client.feature("lspLlm/status")
    def status(ls: LanguageClient, params: Any) -> None:
        rec.statuses.append(plain(params))
        rec.changed.set()

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply(
        ls: LanguageClient, params: types.ApplyWorkspaceEditParams
    ) -> types.ApplyWorkspaceEditResult:
        rec.applied.append(params.edit)
        return types.ApplyWorkspaceEditResult(applied=True)

    return client


def _default(method: str) -> Any:
    return {
        types.WORKSPACE_CONFIGURATION: lsp_client.configuration,
        types.WINDOW_WORK_DONE_PROGRESS_CREATE: lsp_client.create_work_done_progress,
        types.WINDOW_LOG_MESSAGE: lsp_client.log_message,
        types.WINDOW_SHOW_MESSAGE: lsp_client.show_message,
    }[method]


CONFIG = ClientServerConfig(
    server_command=SERVER, client_factory=make_client, server_env=server_env()
)


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri),
        position=types.Position(line, character),
        context=types.InlineCompletionContext(types.InlineCompletionTriggerKind.Automatic),
    )


async def raw_request(client: LanguageClient, method: str, params: Any) -> Any:
    """Send a request exactly as given (no typing by the client), await its response."""
    from concurrent.futures import Future

    msg_id = f"raw-{id(params)}"
    future: Future[Any] = Future()
    client.protocol._request_futures[msg_id] = future
    client.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return await asyncio.wrap_future(future)


async def start_on_tiny(client: LanguageClient, tiny: Any, **options: Any) -> None:
    """Initialize a VS Code-like session on the tiny test model, with more settings, and
    wait until it is ready."""
    from pytest_lsp import client_capabilities

    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options={"model": str(tiny.target), **options},
        )
    )
    await client.rec.wait_status("ready")
