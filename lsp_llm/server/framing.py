"""Reading LSP frames off a stream, strictly: the loop under both the stdio server and each
`--tcp` daemon connection (pygls' own loop drops a frame it cannot read and then loses its
place in the stream, answering nothing more).

Headers are read case-insensitively; a frame whose `Content-Length` is missing, not a
number, negative or over `MAX_FRAME_BYTES`, or a header line that is not `Name: value`
with a token for a name (a body where the blank line after the headers was left out),
cannot be resynchronised, so the connection ends with a log line; over stdio the process
then exits with status 2 (`FRAMING_EXIT`), so a supervising editor knows it was not a clean
end. Each body goes to `LspLlmProtocol.receive`, which answers what it cannot read (invalid
UTF-8 or JSON, wrong shapes) with the JSON-RPC error for it.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Protocol

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 256 * 1024 * 1024
"""The largest message read (a document of a few hundred MB would be refused here)."""
MAX_HEADER_LINES = 32
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
"""A header's name is an HTTP token: JSON text read as a header line is not one."""
FRAMING_EXIT = 2
"""The stdio server's exit status after the framing broke."""


class Reader(Protocol):
    async def readline(self) -> bytes: ...
    async def readexactly(self, n: int) -> bytes: ...


class Receives(Protocol):
    def receive(self, body: bytes) -> None: ...

    @property
    def frame_limit(self) -> int: ...


class FrameError(Exception):
    """The stream is not LSP framing any more; the message says how."""


async def read_frame(reader: Any, limit: int = MAX_FRAME_BYTES) -> bytes | None:
    """The next message body, or None at the end of the stream."""
    length: int | None = None
    for _ in range(MAX_HEADER_LINES):
        line = await reader.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        name, sep, value = line.decode("ascii", "replace").partition(":")
        if not sep or not HEADER_NAME.fullmatch(name):
            raise FrameError(f"not a header line (no blank line after the headers?): {line[:80]!r}")
        if name.strip().lower() == "content-length":
            text = value.strip()
            if not text.isdigit():
                raise FrameError(f"Content-Length is not a length: {text[:40]!r}")
            length = int(text)
    else:
        raise FrameError(f"more than {MAX_HEADER_LINES} header lines")
    if length is None:
        raise FrameError("a frame without Content-Length")
    if length > limit:
        raise FrameError(f"a {length}-byte message (the limit here is {limit})")
    body = await reader.readexactly(length)
    if len(body) < length:
        return None  # the stream ended inside the body
    return bytes(body)


async def serve_frames(stop: threading.Event, reader: Any, protocol: Receives) -> bool:
    """Hand every frame to `protocol.receive` until the stream ends, `stop` is set, or the
    framing breaks (logged); False when it ended for broken framing."""
    while not stop.is_set():
        try:
            body = await read_frame(reader, protocol.frame_limit)
        except FrameError as exc:
            logger.error("bad LSP framing, closing the connection: %s", exc)
            return False
        except BrokenPipeError:
            raise
        except Exception as exc:  # asyncio.IncompleteReadError, a reset connection
            logger.info("the connection ended: %s", exc)
            return True
        if body is None:
            return True
        try:
            protocol.receive(body)
        except BrokenPipeError:  # the client is gone
            raise
        except Exception:  # never let one message end the session
            logger.exception("unable to handle a message")
    return True
