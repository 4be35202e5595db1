"""Builds the server with every feature registered, and runs it over stdio or TCP."""

from __future__ import annotations

import asyncio
import logging

from lsp_llm.server import chat, codeactions, completion, lifecycle
from lsp_llm.server.app import LspLlmServer
from lsp_llm.server.daemon import serve_tcp
from lsp_llm.server.pool import POOL

logger = logging.getLogger(__name__)


def create_server() -> LspLlmServer:
    server = LspLlmServer()
    lifecycle.register(server)
    completion.register(server)
    codeactions.register(server)
    chat.register(server)
    return server


def serve(tcp: tuple[str, int] | None = None) -> int:
    try:
        if tcp is None:
            server = create_server()
            try:
                server.start_io()
            finally:
                server.host.close()
        else:
            asyncio.run(serve_tcp(*tcp, create_server))  # a session per editor
    except KeyboardInterrupt:
        pass
    finally:
        POOL.close()
    logger.info("server stopped")
    return 0
