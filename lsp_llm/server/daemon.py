"""`lsp-llm serve --tcp`: a daemon for any number of editors, at once or one after another.

Each connection gets its own LSP session (a fresh server: its documents, settings, status
and pending requests); sessions share loaded models through `server.pool`. An editor's
`exit`, or its connection dropping, ends that session only: its requests are cancelled and
its model goes back to the pool, still loaded for the next editor. The daemon runs until
it is interrupted. Every connection authenticates with the daemon's token (`server.auth`).
(pygls' own TCP server has one session for the process and exits with its first client.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_llm.server.auth import create_token, read_token, token_path
from lsp_llm.server.connection import Connection
from lsp_llm.server.framing import serve_frames

logger = logging.getLogger(__name__)

INITIALIZE_WITHIN_S = 30
"""A connection that has not initialized (with the token) by then is closed."""


async def _session(
    create_server: Callable[[], Any],
    token: Token,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    peer = writer.get_extra_info("peername")
    logger.info("editor connected from %s", peer)
    server = create_server()
    server.protocol.connection = Connection.of_daemon(token.secret)
    server.protocol.set_writer(writer)
    server._stop_event = stop = threading.Event()

    async def deadline() -> None:
        await asyncio.sleep(INITIALIZE_WITHIN_S)
        if not server.protocol.initialize_seen:
            logger.warning("%s did not initialize in %d s: closing it", peer, INITIALIZE_WITHIN_S)
            server.protocol.end_connection()

    timer = asyncio.get_running_loop().create_task(deadline())
    try:
        await serve_frames(stop, reader, server.protocol)
    finally:
        timer.cancel()
        end_session(server)
        writer.close()
        logger.info("editor from %s disconnected", peer)


def end_session(server: Any) -> None:
    """Cancel what the session still runs (its generations stop within a forward pass)
    and hand its model back to the pool."""
    for future in list(server.protocol._request_futures.values()):
        if not future.done():
            future.cancel()
    server.protocol._request_futures.clear()
    server.host.close()


@dataclass(frozen=True)
class Token:
    secret: str
    path: Path


async def serve_tcp(
    host: str, port: int, create_server: Callable[[], Any], token_file: Path | None = None
) -> None:
    """Serve editors on `host:port` until interrupted; each must `initialize` with the token
    written to `token_file` (default `auth.token_path(port)`), removed again at the end."""
    path = token_file or token_path(port)
    token: Token | None = None

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if token is None:  # connected in the instant before the token existed
            writer.close()
            return
        await _session(create_server, token, reader, writer)

    # Listen first: a second daemon on a taken port fails here, before it could overwrite
    # the running daemon's token.
    listener = await asyncio.start_server(connection, host, port)
    token = Token(create_token(path), path)
    logger.info("the token for this daemon is in %s", path)
    addresses = ", ".join(str(s.getsockname()) for s in listener.sockets)
    logger.info("listening on %s", addresses)
    try:
        async with listener:
            await listener.serve_forever()
    finally:
        if read_token(path) == token.secret:  # not a newer daemon's on the same port
            path.unlink(missing_ok=True)
