"""JSON-RPC details pygls leaves open: malformed params get an InvalidParams error (pygls
only logs them), requests before `initialize` get ServerNotInitialized, a second
`initialize` is refused, and in a `--tcp` daemon a connection must first `initialize` with
the daemon's token (anything else it sends before that has no effect; a wrong token gets
an error and the connection is closed), and an editor's `exit` ends its own session, not
the process."""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from typing import Any
from urllib.parse import unquote

import attrs
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcMethodNotFound,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol, lsp_method

from lsp_llm.server.auth import TOKEN_KEY, token_matches
from lsp_llm.server.connection import Connection
from lsp_llm.server.edits import EditError, apply_changes
from lsp_llm.server.framing import MAX_FRAME_BYTES

UNAUTHENTICATED_FRAME_BYTES = 1024 * 1024
"""A daemon connection's messages before its `initialize` succeeded."""

logger = logging.getLogger(__name__)


class _Rejected:
    """Placeholder for a message already answered with an error."""

    jsonrpc = "2.0"


class LspLlmProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Set first: pygls reads every attribute (properties too) while it initialises.
        self.initialize_seen = False
        self.connection = Connection()
        """Stdio, or one editor's session in a `--tcp` daemon (set by `daemon.py`)."""
        self.out_of_sync: dict[str, str] = {}
        """Open documents whose copy here may differ from the editor's, and why."""
        super().__init__(*args, **kwargs)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(
        self, params: types.DidOpenTextDocumentParams
    ) -> Generator[Any, Any, None]:
        """The whole text again: a document that was out of sync is in sync."""
        self.out_of_sync.pop(unquote(params.text_document.uri), None)
        yield from super().lsp_text_document__did_open(params)

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        """All of a change's edits at once in linear time (`edits.apply_changes`), or none:
        a change with a range that does not address the document leaves it out of sync
        (logged, the user told once) until the client sends it whole again."""
        key = unquote(params.text_document.uri)
        doc = self.workspace.text_documents.get(key)
        if doc is None:
            logger.warning("a change to %s, which is not open: ignored", key[:200])
            return
        whole = any(
            not isinstance(c, types.TextDocumentContentChangePartial)
            for c in params.content_changes
        )
        if key in self.out_of_sync and not whole:
            return  # edits to a copy already known to differ from the editor's
        encoding = str(getattr(self.workspace.position_encoding, "value", "utf-16"))
        try:
            applied = apply_changes(doc.source, params.content_changes, encoding)
        except EditError as exc:
            reason = f"{exc}; the change was not applied"
            logger.error("%s is out of sync with the editor: %s", key[:200], reason)
            self.out_of_sync[key] = reason
            self._server.window_show_message(
                types.ShowMessageParams(
                    types.MessageType.Error,
                    f"lsp-llm: {key.rsplit('/', 1)[-1][:80]} is out of sync ({reason}); "
                    "close and reopen it",
                )
            )
            return
        self.out_of_sync.pop(key, None)
        doc._source = applied.text
        doc.version = params.text_document.version
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        if not self.connection.daemon:
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

    # -- reading a message (lsp_llm/server/framing.py hands each body here) ---------------
    def receive(self, body: bytes) -> None:
        """One message body: exactly one response for a request, whatever it holds (the
        JSON-RPC error for what cannot be read), nothing for a notification."""
        try:
            data = json.loads(body.decode("utf-8"))
        except UnicodeDecodeError:
            return self._refuse(None, JsonRpcParseError("the message is not UTF-8"))
        except RecursionError:
            return self._refuse(None, JsonRpcInvalidRequest("the message is nested too deeply"))
        except ValueError as exc:
            return self._refuse(None, JsonRpcParseError(f"the message is not JSON: {exc}"))
        if not isinstance(data, dict):
            what = "batches are not supported" if isinstance(data, list) else "not an object"
            return self._refuse(None, JsonRpcInvalidRequest(f"invalid message: {what}"))
        msg_id = data.get("id")
        is_request = "id" in data and "method" in data
        if is_request and not (
            isinstance(msg_id, str) or (isinstance(msg_id, int) and not isinstance(msg_id, bool))
        ):
            return self._refuse(
                None, JsonRpcInvalidRequest("a message id must be a string or number")
            )
        method = data.get("method")
        if data.get("jsonrpc") != "2.0" or ("method" in data and not isinstance(method, str)):
            error = JsonRpcInvalidRequest('a message must have "jsonrpc": "2.0" and a method')
            return self._refuse(msg_id, error) if is_request else None
        if is_request and self._shutdown and method != types.EXIT:
            return self._refuse(msg_id, JsonRpcInvalidRequest("the server is shutting down"))
        if is_request and not self.initialize_seen and method != types.INITIALIZE:
            early = JsonRpcServerNotInitialized("the server is not initialized yet")
            return self._refuse(msg_id, early)
        if self.connection.auth_token is not None and not self.initialize_seen:
            # A daemon connection that has not authenticated: nothing is structured but an
            # initialize carrying the token (read from the raw message first).
            if not is_request:
                return None
            if not self._token_in(data):
                return self._refuse_stranger(msg_id)
        if is_request and not self._knows(method):
            return self._refuse(msg_id, JsonRpcMethodNotFound(f"unknown method {method}"))
        if is_request and self._is_notification(method):
            error = JsonRpcInvalidRequest(f"{method} is a notification: it takes no id")
            return self._refuse(msg_id, error)
        try:
            message = self.structure_message(data)
        except RecursionError:
            return self._refuse(
                msg_id if is_request else None, JsonRpcInvalidRequest("nested too deeply")
            )
        except JsonRpcException as exc:
            return self._refuse(msg_id, exc) if is_request else None
        self.handle_message(message)

    @property
    def frame_limit(self) -> int:
        """The largest message read next: small until a daemon connection has
        authenticated (a stranger cannot make it buffer hundreds of MB)."""
        if self.connection.auth_token is not None and not self.initialize_seen:
            return UNAUTHENTICATED_FRAME_BYTES
        return MAX_FRAME_BYTES

    def _is_notification(self, method: Any) -> bool:
        kind = self.get_message_type(method)
        return kind is not None and attrs.has(kind) and "id" not in attrs.fields_dict(kind)

    def _execute_handler(
        self, msg_id: Any, handler: Any, callback: Any, *args: Any, **kwargs: Any
    ) -> None:
        """pygls files each notification's future under a fresh id and never removes it;
        one long session would grow without end: removed when the handler is done."""
        if callback == self._check_handler_result:
            checked = callback

            def callback(future: Any, _id: Any = msg_id) -> None:
                self._request_futures.pop(_id, None)
                checked(future)

        super()._execute_handler(msg_id, handler, callback, *args, **kwargs)

    def _knows(self, method: Any) -> bool:
        try:
            self._get_handler(method)
        except JsonRpcMethodNotFound:
            return False
        return True

    def _refuse(self, msg_id: Any, error: JsonRpcException) -> None:
        """An error response; `msg_id` None when the request's id could not be read."""
        logger.warning("refused a message: %s", error.message)
        self._send_data(
            {
                "jsonrpc": "2.0",
                "id": msg_id,
                "error": {"code": error.code, "message": error.message},
            }
        )

    def _send_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        """No Python traceback goes on the wire (it is in the log): an internal error says
        what failed, not where."""
        if error is not None and getattr(error, "data", None) is not None:
            error.data = None
        super()._send_response(msg_id, result, error)

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
            if "id" in data and "method" not in data:  # the client's answer to our request
                future = self._request_futures.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_exception(JsonRpcInvalidParams(f"an unreadable response: {exc}"))
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
            if self.connection.auth_token is not None and not self._authenticated(message):
                self._refuse_stranger(message.id)
                return
            self.initialize_seen = True
        elif not self.initialize_seen and self.connection.auth_token is not None and msg_id is None:
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

    def _refuse_stranger(self, msg_id: Any) -> None:
        logger.warning("a connection's initialize had no valid %s: closing it", TOKEN_KEY)
        refused = JsonRpcInvalidRequest(
            f"lsp-llm: this daemon needs initializationOptions.{TOKEN_KEY}, the token "
            "in the file it wrote for its user (see lsp-llm serve --help)"
        )
        self._send_response(msg_id, error=refused.to_response_error())
        self.end_connection()

    def _token_in(self, data: dict[str, Any]) -> bool:
        """Whether a raw `initialize` carries the daemon's token (nothing else is read)."""
        assert self.connection.auth_token is not None
        params = data.get("params")
        options = params.get("initializationOptions") if isinstance(params, dict) else None
        given = options.get(TOKEN_KEY) if isinstance(options, dict) else None
        return token_matches(self.connection.auth_token, given)

    def _authenticated(self, message: Any) -> bool:
        assert self.connection.auth_token is not None
        options = getattr(getattr(message, "params", None), "initialization_options", None)
        given = options.get(TOKEN_KEY) if isinstance(options, dict) else None
        return token_matches(self.connection.auth_token, given)
