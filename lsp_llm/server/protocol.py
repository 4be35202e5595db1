"""JSON-RPC details pygls leaves open: malformed params get an InvalidParams error (pygls
only logs them), requests before `initialize` get ServerNotInitialized, and in a `--tcp`
daemon an editor's `exit` ends its own session, not the process."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcServerNotInitialized
from pygls.protocol import LanguageServerProtocol, lsp_method

logger = logging.getLogger(__name__)


class _Rejected:
    """Placeholder for a message already answered with an error."""

    jsonrpc = "2.0"


class LspLlmProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialize_seen = False
        self.daemon_session = False
        """True for one editor's session in a `--tcp` daemon (lsp_llm/server/daemon.py)."""

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        if not self.daemon_session:
            yield from super().lsp_exit(*args)
            return
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        if self._server._stop_event is not None:
            self._server._stop_event.set()
        if self.writer is not None:
            self.writer.close()  # the connection closes; the daemon serves on

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "jsonrpc" in data and "id" in data and "method" in data:
                error = JsonRpcInvalidParams(
                    f"invalid params for {data['method']}: {exc.__cause__ or exc}"
                )
                self._send_response(data["id"], error=error.to_response_error())
                return _Rejected()
            raise

    def handle_message(self, message: Any) -> None:
        if isinstance(message, _Rejected):
            return
        method = getattr(message, "method", None)
        if method == types.INITIALIZE:
            self.initialize_seen = True
        elif (
            not self.initialize_seen
            and method is not None
            and method != types.EXIT
            and getattr(message, "id", None) is not None
        ):
            error = JsonRpcServerNotInitialized("the server is not initialized yet")
            self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)
