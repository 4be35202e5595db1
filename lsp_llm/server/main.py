"""Builds the server with every feature registered, and runs it over stdio or TCP."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from lsp_llm.config import Settings
from lsp_llm.server import chat, codeactions, completion, lifecycle
from lsp_llm.server.app import LspLlmServer
from lsp_llm.server.auth import ModelPolicy
from lsp_llm.server.daemon import serve_tcp
from lsp_llm.server.pool import POOL

logger = logging.getLogger(__name__)


def create_server(
    defaults: Settings | None = None, policy: ModelPolicy | None = None
) -> LspLlmServer:
    server = LspLlmServer(defaults, policy)
    lifecycle.register(server)
    completion.register(server)
    codeactions.register(server)
    chat.register(server)
    return server


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(
    tcp: tuple[str, int] | None = None,
    defaults: Settings | None = None,
    token_file: Path | None = None,
    policy: ModelPolicy | None = None,
) -> int:
    """Run over stdio, or as a `--tcp` daemon; `defaults` are every session's settings
    before the client's own (the command line's engine). Returns the exit code."""
    code = 0
    try:
        if tcp is None:
            server = create_server(defaults)
            try:
                server.start_io()
            finally:
                server.host.close()
            code = server.exit_code
        else:
            # SIGTERM (a service manager stopping the daemon) ends it as Ctrl-C does, so
            # its token file is removed
            signal.signal(signal.SIGTERM, _interrupt)
            # a session per editor
            asyncio.run(serve_tcp(*tcp, lambda: create_server(defaults, policy), token_file))
    except KeyboardInterrupt:
        pass
    finally:
        POOL.close()
    logger.info("server stopped")
    return code
