"""The plan of one chat turn: its prompt within `chat.contextTokens` and its sampled
generation request, the same for every backend (a local model reads the templated token
ids, a remote engine the turns) and for the benchmark."""

from __future__ import annotations

from lsp_llm.config import Settings
from lsp_llm.context.prompts import CodeContext, chat_prompt
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import GenerationRequest, Sampling, Speculation


def plan_chat(
    info: TokenizerInfo,
    settings: Settings,
    messages: list[dict[str, str]],
    code: CodeContext | None = None,
) -> GenerationRequest:
    """The generation for a chat turn under `settings`."""
    s = settings.chat
    prompt = chat_prompt(
        info,
        messages,
        system_prompt=s.system_prompt,
        context_tokens=info.budget(s.context_tokens, s.max_new_tokens),
        code=code,
    )
    return prompt.request(
        max_new_tokens=s.max_new_tokens,
        sampling=Sampling(s.temperature, s.top_p, s.seed),
        speculation=Speculation(settings.speculation.mode, settings.speculation.num_tokens),
        lane="background",
    )
