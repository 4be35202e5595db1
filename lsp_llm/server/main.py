"""Builds the server with every feature registered, and runs it over stdio or TCP."""

from __future__ import annotations

import logging

from lsp_llm.server import chat, codeactions, completion, lifecycle
from lsp_llm.server.app import LspLlmServer

logger = logging.getLogger(__name__)


def create_server() -> LspLlmServer:
    server = LspLlmServer()
    lifecycle.register(server)
    completion.register(server)
    codeactions.register(server)
    chat.register(server)
    return server


def serve(tcp: tuple[str, int] | None = None) -> int:
    server = create_server()
    try:
        if tcp is None:
            server.start_io()
        else:
            logger.info("listening on %s:%d", *tcp)
            server.start_tcp(*tcp)
    finally:
        server.host.close()
    logger.info("server stopped")
    return 0
