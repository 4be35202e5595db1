"""An OpenAI-compatible HTTP API as a stream of chunks: `POST /completions` and
`POST /chat/completions` with `stream: true` (server-sent events), `GET /models` as the
health probe. httpx keeps the connections alive between requests; connection failures are
retried with backoff before anything was received, and every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0
"""The longest wait for the next piece of a stream (a long prompt on a busy engine)."""
RETRIES = 3
BACKOFF_S = 0.25
"""The first retry's delay; each next one doubles it."""


class EngineUnreachable(Exception):
    """The engine could not be reached (refused, timed out, dropped the connection)."""


class EngineRefused(Exception):
    """The engine answered with an error (wrong model name, bad key, bad request)."""


class EngineFailed(Exception):
    """A request failed once under way (the engine too slow, the connection dropped): the
    engine itself may be fine."""


RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,  # a kept-alive connection the engine had closed
    httpx.ReadError,
    httpx.WriteError,
)
"""Failures before anything arrived that a new connection may not meet."""


@dataclass(frozen=True)
class Chunk:
    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def _read_chunk(data: dict[str, Any], chat: bool) -> Chunk:
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    if chat:
        delta = choice.get("delta") or {}
        text = delta.get("content") if isinstance(delta, dict) else None
    else:
        text = choice.get("text")
    found = data.get("usage")
    usage: dict[str, Any] = found if isinstance(found, dict) else {}
    return Chunk(
        text if isinstance(text, str) else "",
        choice.get("finish_reason"),
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
    )


def _error_text(response: httpx.Response) -> str:
    """The engine's own message (OpenAI's `error.message`, FastAPI's `detail`) or the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        for key in ("error", "detail", "message"):
            if body.get(key):
                return str(body[key])[:300]
    return str(body)[:300]


class OpenAIClient:
    """One engine's API at `base_url` (ending in `/v1` for most engines)."""

    def __init__(self, base_url: str, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
        )

    async def models(self) -> list[str]:
        """The model names the engine serves; raises `EngineUnreachable`/`EngineRefused`."""
        try:
            response = await self._http.get(
                f"{self.base_url}/models", timeout=httpx.Timeout(CONNECT_TIMEOUT_S)
            )
        except httpx.HTTPError as exc:
            raise EngineUnreachable(self._describe(exc)) from exc
        if response.status_code == 404:
            return []  # an engine without the list: reachable, names unknown
        if response.status_code >= 400:
            raise EngineRefused(f"{self.base_url}/models: {_error_text(response)}")
        try:
            data = response.json().get("data") or []
        except (ValueError, AttributeError) as exc:
            raise EngineRefused(f"{self.base_url}/models did not answer JSON") from exc
        return [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]

    async def stream(self, path: str, body: dict[str, Any]) -> AsyncGenerator[Chunk, None]:
        """The chunks of one streamed request (`path` is `/completions` or
        `/chat/completions`). Leaving the iteration early closes the HTTP stream, which is
        how the engine learns to stop generating; a stream read to its end leaves the
        connection open for the next request."""
        chat = path.endswith("chat/completions")
        url = f"{self.base_url}{path}"
        for attempt in range(RETRIES + 1):
            started = False
            try:
                async with aconnect_sse(self._http, "POST", url, json=body) as source:
                    response = source.response
                    if response.status_code >= 400:
                        await response.aread()
                        raise EngineRefused(f"{url}: {_error_text(response)}")
                    finished = False
                    async for event in source.aiter_sse():
                        started = True
                        if finished or event.data.strip() == "[DONE]":
                            finished = True  # read on to the end: the connection is reused
                            continue
                        try:
                            data = json.loads(event.data)
                        except ValueError as exc:
                            raise EngineRefused(f"{url}: an event that is not JSON") from exc
                        if isinstance(data, dict) and "error" in data and not data.get("choices"):
                            raise EngineRefused(f"{url}: {data['error']}")
                        if isinstance(data, dict):
                            yield _read_chunk(data, chat)
                    return
            except SSEError as exc:
                raise EngineRefused(f"{url} did not answer with an event stream: {exc}") from exc
            except RETRYABLE as exc:
                if started:
                    raise EngineFailed(self._describe(exc, "dropped the stream")) from exc
                if attempt == RETRIES:
                    raise EngineUnreachable(self._describe(exc)) from exc
                delay = BACKOFF_S * 2**attempt
                logger.info("engine at %s: %s; retrying in %.2f s", url, exc, delay)
                await asyncio.sleep(delay)
            except httpx.HTTPError as exc:  # a read timeout, the pool exhausted
                raise EngineFailed(self._describe(exc, "did not answer in time")) from exc

    def _describe(self, exc: httpx.HTTPError, what: str = "is unreachable") -> str:
        text = str(exc) or "no details"
        return f"the engine at {self.base_url} {what} ({type(exc).__name__}: {text})"

    async def aclose(self) -> None:
        await self._http.aclose()
