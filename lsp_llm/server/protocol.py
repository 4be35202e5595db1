"""JSON-RPC details pygls leaves open: malformed params get an InvalidParams error (pygls
only logs them), requests before `initialize` get ServerNotInitialized, a second
`initialize` is refused, and in a `--tcp` daemon a connection must first `initialize` with
the daemon's token (anything else it sends before that has no effect; a wrong token gets
an error and the connection is closed), and an editor's `exit` ends its own session, not
the process."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol, lsp_method

from lsp_llm.server.auth import TOKEN_KEY, token_matches

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
        self.auth_token: str | None = None
        """The daemon's token, which this connection's `initialize` must carry."""
        self.token_hint = "the daemon's token file"

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        if not self.daemon_session:
            yield from super().lsp_exit(*args)
            return
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        self.end_connection()

    def end_connection(self) -> None:
        """In the daemon: close this connection; the daemon serves on."""
        if self._server._stop_event is not None:
            self._server._stop_event.set()
        if self.writer is not None:
            self.writer.close()

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
        msg_id = getattr(message, "id", None)
        if method == types.INITIALIZE:
            if self.initialize_seen:
                again = JsonRpcInvalidRequest("the server is already initialized")
                self._send_response(message.id, error=again.to_response_error())
                return
            if self.auth_token is not None and not self._authenticated(message):
                logger.warning("a connection's initialize had no valid %s: closing it", TOKEN_KEY)
                refused = JsonRpcInvalidRequest(
                    f"lsp-llm: this daemon needs initializationOptions.{TOKEN_KEY}, the token "
                    f"in {self.token_hint}"
                )
                self._send_response(message.id, error=refused.to_response_error())
                self.end_connection()
                return
            self.initialize_seen = True
        elif not self.initialize_seen and self.auth_token is not None and msg_id is None:
            return  # before a valid initialize a daemon connection's notifications do nothing
        elif (
            not self.initialize_seen
            and method is not None
            and method != types.EXIT
            and msg_id is not None
        ):
            error = JsonRpcServerNotInitialized("the server is not initialized yet")
            self._send_response(message.id, error=error.to_response_error())
            return
        super().handle_message(message)

    def _authenticated(self, message: Any) -> bool:
        assert self.auth_token is not None
        options = getattr(getattr(message, "params", None), "initialization_options", None)
        given = options.get(TOKEN_KEY) if isinstance(options, dict) else None
        return token_matches(self.auth_token, given)
