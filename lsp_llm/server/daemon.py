"""`lsp-llm serve --tcp`: a daemon for any number of editors, at once or one after another.

Each connection gets its own LSP session (a fresh server: its documents, settings, status
and pending requests); sessions share loaded models through `server.pool`. An editor's
`exit`, or its connection dropping, ends that session only: its requests are cancelled and
its model goes back to the pool, still loaded for the next editor. The daemon runs until
it is interrupted. (pygls' own TCP server has one session for the process and exits with
its first client.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from pygls.io_ import run_async

logger = logging.getLogger(__name__)


async def _session(
    create_server: Callable[[], Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    peer = writer.get_extra_info("peername")
    logger.info("editor connected from %s", peer)
    server = create_server()
    server.protocol.daemon_session = True
    server.protocol.set_writer(writer)
    server._stop_event = stop = threading.Event()
    try:
        await run_async(
            stop_event=stop,
            reader=reader,
            protocol=server.protocol,
            logger=logger,
            error_handler=server.report_server_error,
        )
    finally:
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


async def serve_tcp(host: str, port: int, create_server: Callable[[], Any]) -> None:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _session(create_server, reader, writer)

    listener = await asyncio.start_server(connection, host, port)
    addresses = ", ".join(str(s.getsockname()) for s in listener.sockets)
    logger.info("listening on %s", addresses)
    async with listener:
        await listener.serve_forever()
