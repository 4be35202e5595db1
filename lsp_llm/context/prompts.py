"""Prompts from editor context, in one of three styles (`completion.promptStyle`):
fill-in-the-middle when the tokenizer has FIM tokens, the code before the cursor to be
continued (`prefix`, what `auto` picks for models without FIM tokens: measured best on
SmolLM2), or a chat-templated instruction; and chat prompts from messages plus optional
code context. Prompts that end with the code before the cursor are token-healed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from lsp_llm.context.extra import Chunk
from lsp_llm.context.healing import heal_tail, heal_text
from lsp_llm.context.shape import completion_shape
from lsp_llm.generation.budget import (
    CharacterBudget,
    count_tokens,
    take_head,
    take_tail,
)
from lsp_llm.generation.tokens import (
    FimOrder,
    PromptStyle,
    TokenizerInfo,
)
from lsp_llm.generation.types import (
    ChatMessage,
    GenerationRequest,
    Lane,
    Sampling,
    Speculation,
    StopRules,
)

PromptKind = Literal["fim", "chat", "plain"]

LINE_COMMENT = {
    "javascript": "//",
    "javascriptreact": "//",
    "typescript": "//",
    "typescriptreact": "//",
    "c": "//",
    "cpp": "//",
    "csharp": "//",
    "java": "//",
    "go": "//",
    "rust": "//",
    "kotlin": "//",
    "swift": "//",
    "php": "//",
    "scala": "//",
    "lua": "--",
    "sql": "--",
    "haskell": "--",
}
"""How a path header is written for a model without repository tokens (`#` otherwise)."""
CURSOR = "<CURSOR>"
PREFIX_PERCENT = 85
"""The share of a completion prompt's budget given to the code before the cursor (the rest,
and never more, is for the code after it), as Copilot does. In prefix-suffix-middle order
the suffix comes after the prefix, so every edit at the cursor re-reads the whole suffix:
keeping it short keeps the next request's prefill short, even near the top of a file where
the prefix leaves most of the budget unused."""
TURN_OVERHEAD = 8
"""Tokens a chat template adds around one turn (role names, separators), as estimated."""
PREFIX_ALIGN_LINES = 8
"""A completion prompt's window starts on a multiple of this many lines, so that it stays
put while the user types and the next request reuses the cached prefix."""
COMPLETION_SYSTEM = (
    "You complete code. Reply with only the code that replaces <CURSOR>, without fences or "
    "explanation."
)


@dataclass(frozen=True)
class EditorContext:
    """The document and cursor as the engine needs them (offsets in Python characters)."""

    text: str
    offset: int
    language: str = "python"
    path: str | None = None
    extra: tuple[Chunk, ...] = ()
    """Code from other files (`context.extra`), placed before the cursor's file."""
    relative_path: str | None = None
    """The file's path within its workspace folder (named next to the extra context)."""
    repo: str = ""
    """The workspace folder's name."""

    @property
    def before(self) -> str:
        return self.text[: self.offset]

    @property
    def after(self) -> str:
        return self.text[self.offset :]


@dataclass(frozen=True)
class Prompt:
    token_ids: tuple[int, ...]
    kind: PromptKind
    stop: StopRules
    multiline: bool = False
    prefix: str = ""
    suffix: str = ""
    heal: str = ""
    """Text cut off the prompt's end at a token boundary, to be generated again."""
    text: str = ""
    """The prompt as text, special tokens by name (for engines that take text)."""
    messages: tuple[ChatMessage, ...] = ()
    """A chat prompt's turns, for engines that apply their own chat template."""
    indent: str = ""
    """The whitespace before the cursor that the prompt left out (`reindent_point`): the
    model writes the line's indentation itself, and the suggestion replaces this."""

    def request(
        self,
        *,
        max_new_tokens: int,
        speculation: Speculation,
        sampling: Sampling | None = None,
        group: str | None = None,
        lane: Lane = "interactive",
    ) -> GenerationRequest:
        """The generation request for this prompt (every backend reads what it needs)."""
        return GenerationRequest(
            self.token_ids,
            max_new_tokens=max_new_tokens,
            stop=self.stop,
            sampling=sampling or Sampling(),
            speculation=speculation,
            group=group,
            heal=self.heal,
            prompt_text=self.text,
            messages=self.messages,
            lane=lane,
        )


def as_messages(info: TokenizerInfo, turns: list[dict[str, str]]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(t["role"], info.defuse(t["content"])) for t in turns)


def render_extra(info: TokenizerInfo, ctx: EditorContext) -> tuple[list[int], str]:
    """The extra context's chunks as the model read other files in training, then the
    header of the cursor's own file: repository-level tokens when the tokenizer has them
    (Qwen2.5-Coder: `<|repo_name|>repo\n<|file_sep|>path\ncode\n`, StarCoder2 and
    SmolLM2: `<repo_name>repo<file_sep>path\ncode`), else a path comment before each file.
    Token ids and the same as text (special tokens by name)."""
    if not ctx.extra:
        return [], ""
    current = ctx.relative_path or (ctx.path or "").rsplit("/", 1)[-1] or "current file"
    files = [(c.path, c.text if c.text.endswith("\n") else c.text + "\n") for c in ctx.extra]
    if info.repo is not None and not info.approximate:
        (repo_id, sep_id), (repo_name, sep_name) = info.repo
        qwen = repo_name.startswith("<|")
        newline = "\n" if qwen else ""
        ids = [repo_id, *info.encode(ctx.repo + newline)]
        text = repo_name + info.defuse(ctx.repo + newline)
        for path, code in files:
            body = f"{path}\n{code}{newline}"
            ids += [sep_id, *info.encode(body)]
            text += sep_name + info.defuse(body)
        ids += [sep_id, *info.encode(current + "\n")]
        return ids, text + sep_name + info.defuse(current + "\n")
    mark = LINE_COMMENT.get(ctx.language, "#")
    plain = "".join(f"{mark} {path}\n{code}\n" for path, code in files) + f"{mark} {current}\n"
    return info.encode(plain), info.defuse(plain)


def reindent_point(ctx: EditorContext) -> str:
    """The cursor's indentation when the cursor sits on an otherwise blank line, after
    whitespace the editor put there (its auto-indent); empty otherwise. The prompt then ends
    at the line's start, so the model writes the line at the indentation it belongs at (a
    dedent after `return`, say) and does not repeat the indentation the cursor already has."""
    start = ctx.before.rfind("\n") + 1
    indent = ctx.before[start:]
    nl = ctx.after.find("\n")
    rest = ctx.after if nl < 0 else ctx.after[:nl]
    return indent if indent and not indent.strip() and not rest.strip() else ""


def completion_prompt(
    info: TokenizerInfo,
    ctx: EditorContext,
    *,
    context_tokens: int,
    multiline: str = "auto",
    order: FimOrder = "psm",
    style: PromptStyle = "fim",
    reindent: bool = True,
) -> Prompt:
    """The prompt for an inline completion at the cursor (see `_window_prompt`), with
    `ctx.extra` rendered first; the extra context's tokens come out of `context_tokens`.
    `reindent=False` keeps the cursor's indentation in the prompt (`reindent_point`; the
    evaluation's ablation)."""
    head_ids, head_text = render_extra(info, ctx) if style != "chat" else ([], "")
    budget = max(16, context_tokens - len(head_ids))
    indent = reindent_point(ctx) if reindent and style != "chat" else ""
    window = _window_prompt(info, ctx, budget, multiline, order, style, indent)
    prompt = replace(window, indent=indent)
    if not head_ids:
        return prompt
    return replace(
        prompt,
        token_ids=info.ids(head_ids) + prompt.token_ids,
        text=head_text + prompt.text,
    )


def _window_prompt(
    info: TokenizerInfo, ctx: EditorContext, context_tokens: int, multiline: str, order: FimOrder,
    style: PromptStyle, indent: str = "",
) -> Prompt:  # fmt: skip
    """The prompt for the code around the cursor, within `context_tokens`.

    With FIM tokens, `order` is `psm` (`PRE prefix SUF suffix MID`) or `spm`
    (`PRE SUF suffix MID prefix`, the FIM paper's SPM variant, for models trained on it).
    SPM puts everything that stays put while the user types first: a keystroke or a line
    inserted above the cursor changes only the prompt's last tokens, so the engine's
    cached prefix covers the suffix and the prefix up to the edit. For that the suffix gets
    a fixed share of the budget, whatever the prefix holds.

    `style` falls back to the prefix continuation when the model cannot take it; the
    prompts that end with the code before the cursor (SPM, prefix) are token-healed.

    With `indent` (`reindent_point`), the shape is the cursor's, but the prompt is the
    document without that indentation, ending at the line's start."""
    shape = completion_shape(ctx.before, ctx.after, multiline)
    stop = replace(shape.stop, stop_token_ids=info.end_ids)
    if indent:
        start = ctx.offset - len(indent)
        ctx = replace(ctx, text=ctx.text[:start] + ctx.text[ctx.offset :], offset=start)
        stop = replace(stop, indent_from_first_line=True)
    prefix_budget = context_tokens * PREFIX_PERCENT // 100
    chat_ok = info.has_template or info.approximate
    if style == "prefix" or (info.fim is None if style == "fim" else not chat_ok):
        prefix = take_tail(info.tokenizer, ctx.before, context_tokens, align=PREFIX_ALIGN_LINES)
        ids, heal = heal_prompt(info, info.encode(prefix), prefix)
        text = info.defuse(prefix[: len(prefix) - len(heal)])
        if not ids and info.document_start is not None and not info.approximate:
            ids = [info.document_start]  # the start of a file: continue a new document
        return Prompt(info.ids(ids), "plain", stop, shape.multiline, prefix, "", heal, text)
    pre_name, suf_name, mid_name = info.fim_names
    if style == "fim" and order == "spm":
        assert info.fim is not None
        pre, suf, mid = info.fim
        suffix = take_head(info.tokenizer, ctx.after, context_tokens - prefix_budget)
        suffix_ids = info.encode(suffix)
        prefix = take_tail(
            info.tokenizer, ctx.before, context_tokens - len(suffix_ids), align=PREFIX_ALIGN_LINES
        )
        ids = [pre, suf, *suffix_ids, mid, *info.encode(prefix)]
        ids, heal = heal_prompt(info, ids, prefix)
        kept = prefix[: len(prefix) - len(heal)]
        text = f"{pre_name}{suf_name}{info.defuse(suffix)}{mid_name}{info.defuse(kept)}"
        return Prompt(tuple(ids), "fim", stop, shape.multiline, prefix, suffix, heal, text)
    prefix = take_tail(info.tokenizer, ctx.before, prefix_budget, align=PREFIX_ALIGN_LINES)
    prefix_ids = info.encode(prefix)
    # the suffix keeps its share even when the prefix leaves more: in this order a
    # keystroke re-reads all of it
    suffix_budget = min(context_tokens - len(prefix_ids), context_tokens - prefix_budget)
    if style == "fim":
        assert info.fim is not None
        pre, suf, mid = info.fim
        suffix = take_head(info.tokenizer, ctx.after, suffix_budget)
        ids = [pre, *prefix_ids, suf, *info.encode(suffix), mid]
        text = f"{pre_name}{info.defuse(prefix)}{suf_name}{info.defuse(suffix)}{mid_name}"
        return Prompt(tuple(ids), "fim", stop, shape.multiline, prefix, suffix, "", text)
    suffix = take_head(info.tokenizer, ctx.after, suffix_budget)  # the chat-instruct form
    where = f" from {ctx.path}" if ctx.path else ""
    user = f"```{ctx.language}{where}\n{prefix}{CURSOR}{suffix}\n```"
    turns = [{"role": "system", "content": COMPLETION_SYSTEM}, {"role": "user", "content": user}]
    ids = [] if info.approximate else info.template(turns)
    stop = replace(stop, stop_strings=(*stop.stop_strings, "```"))
    return Prompt(
        tuple(ids), "chat", stop, shape.multiline, prefix, suffix, messages=as_messages(info, turns)
    )


def heal_prompt(info: TokenizerInfo, ids: list[int], text: str) -> tuple[list[int], str]:
    """Token healing of a prompt that ends with `text`: at a token boundary when the
    tokenizer is known, else by characters (the engine's output must begin with the cut)."""
    if isinstance(info.tokenizer, CharacterBudget):  # info.approximate
        return ids, heal_text(text)
    return heal_tail(info.tokenizer, ids, text)


@dataclass(frozen=True)
class CodeContext:
    """Code the user attached to a chat: a selection or a whole file."""

    text: str
    path: str | None = None
    language: str | None = None


def chat_prompt(
    info: TokenizerInfo,
    messages: list[dict[str, str]],
    *,
    system_prompt: str,
    context_tokens: int,
    code: CodeContext | None = None,
) -> Prompt:
    """A chat prompt: system message, the conversation (oldest turns dropped first when it
    does not fit), and the attached code in a fenced block before the last user turn."""
    turns = [dict(m) for m in messages if m["role"] != "system"]
    system = "\n\n".join(
        [system_prompt, *(m["content"] for m in messages if m["role"] == "system")]
    )
    if code is not None and code.text:
        budget = max(16, context_tokens // 2)
        snippet = take_head(info.tokenizer, code.text, budget)
        label = f" ({code.path})" if code.path else ""
        block = f"Code{label}:\n```{code.language or ''}\n{snippet}\n```\n\n"
        for turn in reversed(turns):
            if turn["role"] == "user":
                turn["content"] = block + turn["content"]
                break
    stop = StopRules(stop_token_ids=info.end_ids)
    if not info.has_template and not info.approximate:
        text = (
            system
            + "\n\n"
            + "".join(f"{m['role']}: {m['content']}\n" for m in turns)
            + "assistant:"
        )
        text = take_tail(info.tokenizer, text, context_tokens)
        ids = info.encode(text)
        return Prompt(
            tuple(ids),
            "plain",
            replace(stop, stop_strings=("\nuser:",)),
            True,
            text=info.defuse(text),
            messages=as_messages(info, [{"role": "system", "content": system}, *turns]),
        )
    # Each turn is counted once (linear in the conversation); the oldest go first, and a
    # turn longer than the whole budget keeps only its end. One render checks the count
    # (a template adds a few tokens per turn: dropped a turn more if that was too few).
    system = take_head(info.tokenizer, system, context_tokens // 4)
    # the system turn, this turn and the generation prompt each add their overhead
    system_size = count_tokens(info.tokenizer, system)
    share = max(16, context_tokens - system_size - 3 * TURN_OVERHEAD)
    for turn in turns:
        if len(turn["content"]) > share:  # a token is at least one character
            turn["content"] = take_tail(info.tokenizer, turn["content"], share)
    sizes = [TURN_OVERHEAD + count_tokens(info.tokenizer, t["content"]) for t in turns]
    used = TURN_OVERHEAD + system_size + sum(sizes)
    first = 0
    while used > context_tokens and first < len(turns) - 1:
        used -= sizes[first]
        first += 1
    while True:
        conversation = [{"role": "system", "content": system}, *turns[first:]]
        ids = [] if info.approximate else info.template(conversation)
        excess = len(ids) - context_tokens
        if excess > 0 and first >= len(turns) - 1 and sizes[-1] > excess + 16:
            last = turns[-1]["content"]  # one turn left, still too long: cut it further
            keep = count_tokens(info.tokenizer, last) - excess
            turns[-1] = {**turns[-1], "content": take_tail(info.tokenizer, last, keep)}
            sizes[-1] = 0  # cut once more at most
            continue
        if excess <= 0 or first >= len(turns) - 1:
            return Prompt(tuple(ids), "chat", stop, True, messages=as_messages(info, conversation))
        while excess > 0 and first < len(turns) - 1:  # a render or two, not one per turn
            excess -= sizes[first]
            first += 1
