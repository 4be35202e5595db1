"""`LspLlmServer`: the pygls server subclass holding all server state (settings, the model
host, progress and status reporting) and the small helpers handlers share."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument

from lsp_llm import __version__
from lsp_llm.config import Settings, flagged, parse_settings, to_camel
from lsp_llm.context.positions import PositionError, line_starts, to_offset, to_position
from lsp_llm.context.typeahead import TypeAhead
from lsp_llm.generation.backend import Backend
from lsp_llm.generation.budget import readable
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import Done, GenerationRequest
from lsp_llm.server.auth import ModelPolicy
from lsp_llm.server.connection import Connection
from lsp_llm.server.framing import FRAMING_EXIT, serve_frames
from lsp_llm.server.host import ModelHost, ModelUnavailable, Status
from lsp_llm.server.neighbours import Neighbourhood
from lsp_llm.server.protocol import LspLlmProtocol
from lsp_llm.server.structuring import bounded_converter

logger = logging.getLogger(__name__)

STATUS = "lspLlm/status"
CONFIGURATION_TIMEOUT_S = 10.0
DAEMON_ONLY = flagged("daemon_only")
"""Settings only the daemon's command line sets (the schema's `daemon_only`)."""
CONFIG_SECTION = "lspLlm"


class RequestFailed(JsonRpcException):
    """LSP's RequestFailed (-32803): the request was valid but could not be served."""

    CODE = -32803


class LspLlmServer(LanguageServer):
    def __init__(self, defaults: Settings | None = None, policy: ModelPolicy | None = None) -> None:
        super().__init__(
            "lsp-llm",
            __version__,
            protocol_cls=LspLlmProtocol,
            converter_factory=bounded_converter,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
        )
        self.settings = defaults or Settings()
        self.policy = policy or ModelPolicy()
        """What a `--tcp` client may load (the daemon's command line sets it)."""
        self.host = ModelHost(self.send_status, self._report_progress)
        self._progress_token: str | None = None
        self._active = 0
        self._read_source: str | None = None
        self._read_text = ""
        self.typeahead = TypeAhead()
        """Recent suggestions, to follow the user's typing without the model."""
        self.neighbours = Neighbourhood()
        """Where the extra context of completions comes from (other files, imports)."""
        self.exit_code = 0
        self.session = uuid.uuid4().hex[:8]
        """Names this editor's jobs on a shared engine (a `--tcp` daemon has several)."""

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """pygls' stdio server over our strict frame reader (`framing.serve_frames`).
        `exit_code` is then 0 after `shutdown` + `exit`, 1 for an `exit` without `shutdown`
        (the LSP's rule), `FRAMING_EXIT` when the stream stopped being LSP framing."""
        self._stop_event = threading.Event()
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        protocol = self.protocol
        assert isinstance(protocol, LspLlmProtocol)
        protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            if not asyncio.run(serve_frames(self._stop_event, reader, protocol)):
                self.exit_code = FRAMING_EXIT
        except BrokenPipeError:
            logger.error("the client's connection is lost: shutting down")
        except SystemExit as exc:  # pygls' `exit` handler
            self.exit_code = exc.code if isinstance(exc.code, int) else 1
        except KeyboardInterrupt:
            pass
        finally:
            self.shutdown()

    @property
    def connection(self) -> Connection:
        """This session's connection: stdio, or one editor of a `--tcp` daemon."""
        protocol = self.protocol
        assert isinstance(protocol, LspLlmProtocol)
        return protocol.connection

    # -- settings ----------------------------------------------------------------------
    def apply_settings(self, data: Any, source: str) -> Settings:
        """Parse `data` over the current settings; tell the user about invalid fields."""
        new, errors = parse_settings(data, self.settings)
        if self.connection.daemon:
            new = self._keep_daemon_only(new, data, errors)
        if errors:
            text = f"lsp-llm: invalid settings in {source} (kept previous values): " + "; ".join(
                errors
            )
            logger.warning("%s", text)
            self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, text))
            self.window_log_message(types.LogMessageParams(types.MessageType.Warning, text))
        if new != self.settings:
            self.typeahead.forget()  # a suggestion made under other settings is stale
            self.neighbours.forget()
        self.settings = new
        return new

    def _keep_daemon_only(self, new: Settings, data: Any, errors: list[str]) -> Settings:
        """A client of a `--tcp` daemon may be anyone who can reach the port: it cannot set
        what runs code (`trustRemoteCode`, `allowPickleWeights`), where prompts and the
        API key go (`backend`), the process-wide `threads`, or `compile` (it runs a C++
        compiler for a minute of the machine's CPU); the daemon's command line sets those.
        A `backend` field the client sends as null means no preference."""
        sent = data.get("backend") if isinstance(data, dict) else None
        if isinstance(sent, dict) and all(v is None for v in sent.values()):
            new = dataclasses.replace(new, backend=self.settings.backend)
        refused = [f for f in DAEMON_ONLY if getattr(new, f) != getattr(self.settings, f)]
        if refused:
            names = ", ".join(to_camel(f) for f in refused)
            errors.append(
                f"{names}: a client of a --tcp daemon cannot set this (it could make the "
                "daemon run code, send prompts and keys elsewhere, or change every session's "
                "CPU threads or compile code); the daemon's command line does (lsp-llm serve "
                "--tcp PORT --backend-url URL --trust-remote-code --threads N --compile ...)"
            )
            new = dataclasses.replace(new, **{f: getattr(self.settings, f) for f in refused})
        for name in ("model", "draft_model"):
            wanted = getattr(new, name)
            if wanted != getattr(self.settings, name) and not self.policy.allows(wanted):
                errors.append(
                    f"{to_camel(name)}: a client of this --tcp daemon can choose "
                    f"{self.policy.describe()} (the daemon's --allow-model and --model-dir)"
                )
                new = dataclasses.replace(new, **{name: getattr(self.settings, name)})
        return new

    async def pull_configuration(self) -> Any:
        caps = self.client_capabilities.workspace
        if caps is None or not caps.configuration:
            return None
        try:  # a client that never answers must not hold the model load up
            result = await asyncio.wait_for(
                self.workspace_configuration_async(
                    types.ConfigurationParams(
                        items=[types.ConfigurationItem(section=CONFIG_SECTION)]
                    )
                ),
                CONFIGURATION_TIMEOUT_S,
            )
        except Exception:
            logger.debug("workspace/configuration failed", exc_info=True)
            return None
        value = result[0] if result else None
        return value if isinstance(value, dict) and value else None

    # -- status and progress -----------------------------------------------------------
    def send_status(self, status: Status) -> None:
        if status.state == "error":
            self.window_show_message(
                types.ShowMessageParams(types.MessageType.Error, f"lsp-llm: {status.message}")
            )
        elif status.state == "ready" and status.message:
            kind = (
                types.MessageType.Warning if status.level == "warning" else types.MessageType.Info
            )
            self.window_show_message(types.ShowMessageParams(kind, f"lsp-llm: {status.message}"))
        if status.state in ("ready", "error"):
            self._end_progress(status.message if status.state == "error" else "model ready")
        self.protocol.notify(STATUS, status.to_wire())

    async def begin_progress(self) -> None:
        window = self.client_capabilities.window
        if window is None or not window.work_done_progress:
            return
        token = f"lsp-llm-load-{uuid.uuid4().hex[:8]}"
        try:
            await self.work_done_progress.create_async(token)
        except Exception:
            logger.debug("work done progress refused", exc_info=True)
            return
        self._progress_token = token
        self.work_done_progress.begin(
            token,
            types.WorkDoneProgressBegin(
                title="lsp-llm", message="loading model", percentage=0, cancellable=False
            ),
        )

    def _report_progress(self, fraction: float, message: str) -> None:
        if self._progress_token is not None:
            self.work_done_progress.report(
                self._progress_token,
                types.WorkDoneProgressReport(message=message, percentage=int(fraction * 100)),
            )

    def _end_progress(self, message: str | None) -> None:
        if self._progress_token is not None:
            self.work_done_progress.end(
                self._progress_token, types.WorkDoneProgressEnd(message=message)
            )
            self._progress_token = None

    async def reload(self) -> None:
        await self.begin_progress()
        self.host.start(self.settings)

    # -- what handlers share -------------------------------------------------------------
    async def engine(self) -> Backend:
        try:
            return await self.host.ready()
        except ModelUnavailable as exc:
            raise RequestFailed(f"lsp-llm: the model is not available: {exc}") from exc

    async def generate(self, engine: Backend, request: GenerationRequest) -> Done:
        """Run one generation to its end (a `Done`), counted as busy; errors become
        RequestFailed. Cancelling the calling task cancels the generation."""
        self.busy(+1)
        try:
            return await engine.stream(request, deltas=False).result()
        except RuntimeError as exc:
            raise RequestFailed(f"lsp-llm: {exc}") from exc
        finally:
            self.busy(-1)

    @property
    def tokens(self) -> TokenizerInfo:
        """The loaded model's tokenizer info (call after `engine()`)."""
        info = self.host.info
        if info is None:
            raise RequestFailed("lsp-llm: the model is not loaded")
        return info

    def busy(self, delta: int) -> None:
        """Count running generations; report busy/ready on the transitions."""
        before = self._active
        self._active = max(0, self._active + delta)
        status = self.host.status
        if status.state in ("ready", "busy") and (before == 0) != (self._active == 0):
            status.state = "busy" if self._active else "ready"
            self.protocol.notify(STATUS, status.to_wire())

    def document(self, uri: str) -> TextDocument:
        # pygls keys open documents by the percent-decoded URI (VS Code encodes spaces,
        # accents and Windows drive colons); never read one from disk: only open ones.
        key = unquote(uri)
        doc = self.workspace.text_documents.get(key)
        if doc is None:
            raise JsonRpcInvalidParams(f"unknown document {uri}: send textDocument/didOpen first")
        protocol = self.protocol
        if isinstance(protocol, LspLlmProtocol) and key in protocol.out_of_sync:
            raise JsonRpcInvalidParams(
                f"{uri} is out of sync with the editor ({protocol.out_of_sync[key]}): "
                "send it whole (didOpen, or a change without a range)"
            )
        return doc

    def folders(self) -> list[Path]:
        """The workspace folders (the root when the client named no folders)."""
        found = [Path(to_fs_path(f.uri) or "") for f in self.workspace.folders.values()]
        if not found and self.workspace.root_path:
            found = [Path(self.workspace.root_path)]
        return [f for f in found if str(f) not in ("", ".")]

    def text_of(self, doc: TextDocument) -> str:
        """A document's text as prompts may use it (`generation.budget.readable`). A request
        asks for it more than once (its text, each position's offset): the scan of the
        last text is remembered, by identity of the document's string."""
        source = doc.source
        if source is not self._read_source:
            self._read_source, self._read_text = source, readable(source)
        return self._read_text

    @property
    def encoding(self) -> str:
        enc = getattr(self.workspace, "position_encoding", None) or types.PositionEncodingKind.Utf16
        return str(getattr(enc, "value", enc))

    def offset(
        self, doc: TextDocument, position: types.Position, starts: list[int] | None = None
    ) -> int:
        try:
            return to_offset(
                self.text_of(doc), position.line, position.character, self.encoding, starts
            )
        except PositionError as exc:
            raise JsonRpcInvalidParams(f"{doc.uri}: {exc}") from exc

    def position(self, text: str, offset: int, starts: list[int] | None = None) -> types.Position:
        line, character = to_position(text, offset, self.encoding, starts)
        return types.Position(line=line, character=character)

    def range(self, text: str, start: int, end: int) -> types.Range:
        starts = line_starts(text)
        return types.Range(self.position(text, start, starts), self.position(text, end, starts))
