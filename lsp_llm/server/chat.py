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
from lsp_llm.generation.budget import readable
from lsp_llm.generation.types import Done, GenerationError, TextDelta
from lsp_llm.server.app import LspLlmServer, RequestFailed
from lsp_llm.server.params import lsp_range

logger = logging.getLogger(__name__)

CHAT = "lspLlm/chat"
ROLES = ("system", "user", "assistant")


def plain(value: Any) -> Any:
    """pygls hands custom-method params over as attribute objects; make them JSON-like."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def parse_messages(params: Any) -> list[dict[str, str]]:
    if not isinstance(params, dict):
        raise JsonRpcInvalidParams("lspLlm/chat: params must be an object with 'messages'")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise JsonRpcInvalidParams("lspLlm/chat: 'messages' must be a non-empty array")
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise JsonRpcInvalidParams(
                f"lspLlm/chat: messages[{i}].role must be one of {', '.join(ROLES)}"
            )
        if not isinstance(m.get("content"), str):
            raise JsonRpcInvalidParams(f"lspLlm/chat: messages[{i}].content must be a string")
        out.append({"role": m["role"], "content": readable(m["content"])})
    if out[-1]["role"] != "user":
        raise JsonRpcInvalidParams("lspLlm/chat: the last message must be from the user")
    return out


def code_context(ls: LspLlmServer, params: dict[str, Any]) -> CodeContext | None:
    ctx = params.get("context")
    if ctx is None:
        return None
    if not isinstance(ctx, dict) or not isinstance(ctx.get("uri"), str):
        raise JsonRpcInvalidParams("lspLlm/chat: 'context' must be an object with a 'uri'")
    doc = ls.document(ctx["uri"])
    text = ls.text_of(doc)
    rng = ctx.get("range")
    if rng is not None:
        where = lsp_range(rng, "lspLlm/chat: context.range")
        a, b = sorted((ls.offset(doc, where.start), ls.offset(doc, where.end)))
        text = text[a:b]
    from lsp_llm.server.completion import language_of

    return CodeContext(text, doc.path, language_of(doc))


def register(server: LspLlmServer) -> None:
    @server.feature(CHAT)
    async def chat(ls: LspLlmServer, raw: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        params = plain(raw)
        messages = parse_messages(params)
        code = code_context(ls, params)
        token = params.get("partialResultToken")
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
    return {
        "content": done.text,
        "finishReason": done.reason,
        "usage": {
            "promptTokens": done.usage.prompt_tokens,
            "completionTokens": done.usage.completion_tokens,
        },
        "timings": {
            "queueMs": round(t.queue_ms, 2),
            "firstTokenMs": None if t.first_token_ms is None else round(t.first_token_ms, 2),
            "totalMs": round(t.total_ms, 2),
            "tokensPerSecond": round(t.tokens_per_second, 2),
            "serverMs": round((time.perf_counter() - t0) * 1000, 2),
        },
    }
