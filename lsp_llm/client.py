"""A small LSP client over `lsp-llm serve` in a subprocess (or a running `--tcp` daemon):
what the one-shot `complete` and `chat` commands (and the demo) use, so the command line
goes through the same server an editor talks to."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from lsp_llm.server.auth import LOOPBACK, TOKEN_KEY, read_token, token_path


class ServerSession:
    def __init__(
        self,
        settings: dict[str, Any] | None = None,
        on_status: Callable[[dict[str, Any]], None] | None = None,
        server_args: list[str] | None = None,
        connect: tuple[str, int] | None = None,
        token_file: Path | None = None,
        capabilities: types.ClientCapabilities | None = None,
    ) -> None:
        self.settings = settings or {}
        self.capabilities = capabilities or types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True)
        )
        local = connect is not None and connect[0] in LOOPBACK
        if connect is not None and TOKEN_KEY not in self.settings and (local or token_file):
            # A daemon asks for the token it wrote for its user (`lsp_llm.server.auth`);
            # the local file goes only to a local daemon, unless named for another.
            token = read_token(token_file or token_path(connect[1]))
            if token is not None:
                self.settings = {**self.settings, TOKEN_KEY: token}
        self.client = LanguageClient("lsp-llm-cli", "1")
        self.deltas: dict[str, Callable[[str], None]] = {}
        self.ready = asyncio.Event()
        self.status: dict[str, Any] = {}
        self.server_args = server_args or []
        self.connect = connect
        """A running `lsp-llm serve --tcp` daemon to talk to, instead of a subprocess."""
        self.t_start = time.perf_counter()
        self.load_seconds: float | None = None

        @self.client.feature(types.PROGRESS)
        def progress(params: Any) -> None:
            value = params.value
            delta = value.get("delta") if isinstance(value, dict) else getattr(value, "delta", None)
            callback = self.deltas.get(str(params.token))
            if callback is not None and isinstance(delta, str):
                callback(delta)

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create(params: Any) -> None:
            return None

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def show(params: types.ShowMessageParams) -> None:
            print(params.message, file=sys.stderr)  # what an editor would pop up

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def log(params: types.LogMessageParams) -> None:
            return None  # the server logs the same to its stderr

        @self.client.feature("lspLlm/status")
        def status(params: Any) -> None:
            value = params._asdict() if hasattr(params, "_asdict") else dict(params)
            self.status = value
            if on_status is not None:
                on_status(value)
            if value.get("state") in ("ready", "error"):
                if self.load_seconds is None:
                    self.load_seconds = time.perf_counter() - self.t_start
                self.ready.set()

    async def start(self) -> None:
        if self.connect is not None:
            await self.client.start_tcp(*self.connect)
        else:
            await self.client.start_io(sys.executable, "-m", "lsp_llm", *self.server_args, "serve")
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=self.capabilities,
                initialization_options=self.settings,
            )
        )
        self.client.initialized(types.InitializedParams())
        await self.ready.wait()
        if self.status.get("state") == "error":
            raise RuntimeError(self.status.get("message") or "the model failed to load")

    def open(self, path: Path, text: str, language: str = "python") -> str:
        uri = path.resolve().as_uri()
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
            )
        )
        return uri

    async def inline(self, uri: str, line: int, character: int) -> Any:
        return await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri),
                position=types.Position(line, character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        )

    async def chat(
        self,
        messages: list[dict[str, str]],
        on_delta: Callable[[str], None],
        context: dict[str, Any] | None = None,
    ) -> Any:
        token = f"chat-{uuid.uuid4().hex[:8]}"
        self.deltas[token] = on_delta
        params: dict[str, Any] = {"messages": messages, "partialResultToken": token}
        if context is not None:
            params["context"] = context
        try:
            return await self.client.protocol.send_request_async("lspLlm/chat", params)
        finally:
            self.deltas.pop(token, None)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
        except Exception:
            pass
        await self.client.stop()
