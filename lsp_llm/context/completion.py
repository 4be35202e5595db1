"""The plain logic of one completion: from a document and cursor to a generation request,
and from the generated text to the suggestion shown. The server's inline and classic
completion handlers and `lsp-llm eval` share it, so what is evaluated is what editors get."""

from __future__ import annotations

from dataclasses import dataclass

from lsp_llm.config import Settings
from lsp_llm.context.postprocess import Suggestion, clean_suggestion
from lsp_llm.context.prompts import EditorContext, Prompt, completion_prompt
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import FinishReason, GenerationRequest, Speculation, SpeculationMode


@dataclass(frozen=True)
class CompletionPlan:
    ctx: EditorContext
    prompt: Prompt
    request: GenerationRequest

    def suggestion(self, generated: str, reason: FinishReason) -> Suggestion | None:
        """The cleaned suggestion for `generated` (which ended for `reason`), or None when
        nothing is worth showing."""
        return clean_suggestion(
            generated,
            self.ctx.before,
            self.ctx.after,
            self.prompt.multiline,
            truncated=reason == "length",
            indent=self.prompt.indent,
        )


def plan_completion(
    info: TokenizerInfo,
    ctx: EditorContext,
    settings: Settings,
    *,
    group: str | None = None,
    speculation: SpeculationMode | None = None,
    reindent: bool = True,
) -> CompletionPlan:
    """The prompt and greedy generation request for a completion at `ctx`'s cursor;
    `speculation` overrides the configured mode (the evaluation compares modes)."""
    prompt = completion_prompt(
        info,
        ctx,
        context_tokens=info.budget(
            settings.completion.context_tokens, settings.completion.max_new_tokens
        ),
        multiline=settings.completion.multiline,
        order=info.fim_order(settings.completion.fim_order),
        style=info.prompt_style(settings.completion.prompt_style),
        reindent=reindent,
    )
    request = prompt.request(
        max_new_tokens=settings.completion.max_new_tokens,
        speculation=Speculation(
            speculation or settings.speculation.mode, settings.speculation.num_tokens
        ),
        group=group,
    )
    return CompletionPlan(ctx, prompt, request)
