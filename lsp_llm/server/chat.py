"""`lspLlm/chat`: validated messages and optional code context in, deltas streamed as
`$/progress` partial results on the request's `partialResultToken`, the whole reply with
finish reason, usage and timings as the result."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp_llm.context.chat import plan_chat
from lsp_llm.context.prompts import CodeContext
from lsp_llm.generation.types import Done, GenerationError, TextDelta
from lsp_llm.server.app import LspLlmServer, RequestFailed
from lsp_llm.server.wire import (
    ChatContext,
    ChatParams,
    ChatResult,
    ChatTimings,
    ChatUsage,
    structure,
    unstructure,
)

logger = logging.getLogger(__name__)

CHAT = "lspLlm/chat"


def plain(value: Any) -> Any:
    """pygls hands custom-method params over as attribute objects; make them JSON-like."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def parse(raw: Any) -> ChatParams:
    """`lspLlm/chat`'s params, or InvalidParams naming what is wrong."""
    params = structure(plain(raw), ChatParams, CHAT)
    if not params.messages:
        raise JsonRpcInvalidParams(f"{CHAT}.messages must not be empty")
    if params.messages[-1].role != "user":
        raise JsonRpcInvalidParams(f"{CHAT}: the last message must be from the user")
    return params


def code_context(ls: LspLlmServer, ctx: ChatContext | None) -> CodeContext | None:
    if ctx is None:
        return None
    doc = ls.document(ctx.uri)
    text = ls.text_of(doc)
    if ctx.range is not None:
        a, b = sorted((ls.offset(doc, ctx.range.start), ls.offset(doc, ctx.range.end)))
        text = text[a:b]
    from lsp_llm.server.completion import language_of

    return CodeContext(text, doc.path, language_of(doc))


def register(server: LspLlmServer) -> None:
    @server.feature(CHAT)
    async def chat(ls: LspLlmServer, raw: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        params = parse(raw)
        messages = [{"role": m.role, "content": m.content} for m in params.messages]
        code = code_context(ls, params.context)
        token = params.partial_result_token
        engine = await ls.engine()
        # Tokenizing a long conversation takes time: not on the event loop.
        request = await asyncio.to_thread(plan_chat, ls.tokens, ls.settings, messages, code)
        ls.busy(+1)
        try:
            async for event in engine.stream(request):
                if isinstance(event, TextDelta):
                    if token is not None:
                        ls.progress(types.ProgressParams(token=token, value={"delta": event.text}))
                elif isinstance(event, GenerationError):
                    raise RequestFailed(f"lsp-llm: {event.message}")
                elif isinstance(event, Done):
                    return result(event, t0)
        finally:
            ls.busy(-1)
        raise RequestFailed("lsp-llm: the generation ended without a result")


def result(done: Done, t0: float) -> dict[str, Any]:
    t = done.timings
    first = None if t.first_token_ms is None else round(t.first_token_ms, 2)
    return unstructure(
        ChatResult(
            content=done.text,
            finish_reason=done.reason,
            usage=ChatUsage(done.usage.prompt_tokens, done.usage.completion_tokens),
            timings=ChatTimings(
                queue_ms=round(t.queue_ms, 2),
                first_token_ms=first,
                total_ms=round(t.total_ms, 2),
                tokens_per_second=round(t.tokens_per_second, 2),
                server_ms=round((time.perf_counter() - t0) * 1000, 2),
            ),
        )
    )
