"""How a model's tokenizer reads, looked up once (`TokenizerInfo`): its fill-in-the-middle
and repository tokens, the tokens that end a generation, its control-token names (defused
in text prompts), its chat template and context window, and token budgets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from lsp_llm.generation.budget import CharacterBudget, Encodes, encode_plain

FimOrder = Literal["psm", "spm"]
PromptStyle = Literal["fim", "prefix", "chat"]

FIM_NAMINGS = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),  # Qwen2.5-Coder, the bundled model
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),  # StarCoder, SantaCoder
    ("<fim-prefix>", "<fim-suffix>", "<fim-middle>"),
)
REPO_NAMINGS = (
    ("<|repo_name|>", "<|file_sep|>"),  # Qwen2.5-Coder, the bundled model
    ("<repo_name>", "<file_sep>"),  # StarCoder2, SmolLM2
)
"""Repository-level tokens: the repository's name, then each file as separator + path."""
END_TOKENS = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<|repo_name|>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<fim_pad>",
    "<file_sep>",
    "<|eot_id|>",
    "<|end|>",
    "</s>",
)
SPECIAL_SHAPES = re.compile(
    r"<\|[A-Za-z0-9_]+\|>|<(?:fim[_-]\w+|file_sep|filename|repo_name|gh_stars|/?s)>"
)
"""Control-token names common tokenizers use, for when the tokenizer is not known."""


class Tokenizer(Encodes, Protocol):
    """What lsp-llm reads of a model's tokenizer: a transformers tokenizer has all of it.
    Anything else it may have (special tokens, a BOS token) is looked up with a default."""

    @property
    def eos_token_id(self) -> int | None: ...
    def get_vocab(self) -> dict[str, int]: ...
    def __len__(self) -> int: ...
    def decode(self, token_ids: list[int], **kwargs: Any) -> str | list[str]: ...
    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> object: ...


def decode(tokenizer: Tokenizer, ids: list[int], skip_special_tokens: bool = False) -> str:
    """The text of `ids` (one sequence, so one string)."""
    text = tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)
    if not isinstance(text, str):
        raise TypeError(f"the tokenizer decoded one sequence into {type(text).__name__}")
    return text


class DescribedTokenizer(Protocol):
    """A loaded model or tokenizer, as `TokenizerInfo.of` reads it."""

    @property
    def tokenizer(self) -> Tokenizer: ...
    @property
    def context_window(self) -> int | None: ...
    @property
    def trained_spm(self) -> bool: ...


class TokenizerInfo:
    """What the prompt builders need to know about a tokenizer, looked up once."""

    def __init__(
        self,
        tokenizer: Tokenizer | CharacterBudget,
        context_window: int | None = None,
        trained_spm: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.approximate = isinstance(tokenizer, CharacterBudget)
        """No tokenizer is known: budgets count characters, prompts are text only."""
        self.context_window = context_window
        """Positions the model was built for (None: unknown); prompts are kept inside it."""
        self.trained_spm = trained_spm
        """The model learned suffix-prefix-middle order (what `fimOrder: auto` picks)."""
        vocab = tokenizer.get_vocab()
        self.fim: tuple[int, int, int] | None = None
        self.fim_names: tuple[str, str, str] = FIM_NAMINGS[0]
        for names in FIM_NAMINGS:
            if all(n in vocab for n in names):
                self.fim = (int(vocab[names[0]]), int(vocab[names[1]]), int(vocab[names[2]]))
                self.fim_names = names
                break
        self.repo: tuple[tuple[int, int], tuple[str, str]] | None = None
        """The repository-level tokens (name, file separator), ids and names."""
        for repo_names in REPO_NAMINGS:
            if all(n in vocab for n in repo_names):
                ids = (int(vocab[repo_names[0]]), int(vocab[repo_names[1]]))
                self.repo = (ids, repo_names)
                break
        ends = {vocab[n] for n in END_TOKENS if n in vocab}
        if tokenizer.eos_token_id is not None:
            ends.add(int(tokenizer.eos_token_id))
        self.end_ids = frozenset(ends)
        start = vocab.get("<|endoftext|>", getattr(tokenizer, "bos_token_id", None))
        if start is None:
            start = tokenizer.eos_token_id
        self.document_start: int | None = None if start is None else int(start)
        """What a continuation prompt with no text before the cursor starts from (the end
        of a previous document, as in pretraining), so the start of a file is a prompt."""
        self.has_template = bool(getattr(tokenizer, "chat_template", None))
        specials = {str(t) for t in getattr(tokenizer, "all_special_tokens", [])}
        decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        specials |= {str(t.content) for t in decoder.values() if getattr(t, "special", False)}
        specials |= {n for naming in FIM_NAMINGS for n in naming if n in vocab}
        self._specials = (
            re.compile("|".join(re.escape(n) for n in sorted(specials, key=len, reverse=True)))
            if specials
            else SPECIAL_SHAPES
        )

    def defuse(self, text: str) -> str:
        """`text` for a prompt sent as text: a control-token name inside the user's code
        (`<|endoftext|>` in a file about tokenizers) gets a space after its first character,
        so an engine that parses names in text reads it as text, as the token ids do, and a
        file cannot steer the engine (end the prompt, open a new turn)."""
        if "<" not in text:
            return text
        return self._specials.sub(lambda m: m.group(0)[0] + " " + m.group(0)[1:], text)

    @classmethod
    def of(cls, loaded: DescribedTokenizer) -> TokenizerInfo:
        """The info for a `LoadedModel`: its tokenizer, window and trained FIM orders."""
        return cls(loaded.tokenizer, loaded.context_window, loaded.trained_spm)

    @classmethod
    def by_characters(cls) -> TokenizerInfo:
        """No tokenizer known: character budgets, text prompts, the engine's chat template."""
        return cls(CharacterBudget())

    def ids(self, ids: list[int]) -> tuple[int, ...]:
        """A prompt's token ids, or none when they are only counts (`approximate`)."""
        return () if self.approximate else tuple(ids)

    def prompt_style(self, requested: str) -> PromptStyle:
        """The completion prompt style for the `completion.promptStyle` setting: `auto` is
        FIM when the tokenizer has FIM tokens, else the prefix continuation (on SmolLM2 it
        beat the chat-instruct form on every hole kind of `lsp-llm eval`). A style the model
        cannot take (FIM without FIM tokens, chat without a template) falls back the same."""
        if requested == "chat" and self.has_template:
            return "chat"
        if requested in ("auto", "fim") and self.fim is not None:
            return "fim"
        return "prefix"

    def fim_order(self, requested: str) -> FimOrder:
        """The FIM order a completion prompt uses for the `completion.fimOrder` setting."""
        if requested == "auto":
            return "spm" if self.trained_spm else "psm"
        return "spm" if requested == "spm" else "psm"

    def budget(self, requested: int, reserve: int) -> int:
        """`requested` prompt tokens, cut so that the prompt plus `reserve` new tokens fit the
        model's context window (at most half the window is reserved)."""
        if self.context_window is None:
            return requested
        room = self.context_window - min(reserve, self.context_window // 2)
        return max(16, min(requested, room))

    def encode(self, text: str) -> list[int]:
        return encode_plain(self.tokenizer, text)

    def template(self, messages: list[dict[str, str]]) -> list[int]:
        if isinstance(self.tokenizer, CharacterBudget):
            raise ValueError("no chat template is known without the model's tokenizer")
        out = self.tokenizer.apply_chat_template(
            messages, tokenize=True, add_generation_prompt=True
        )
        ids = out["input_ids"] if isinstance(out, Mapping) else out
        if not isinstance(ids, Sequence) or isinstance(ids, str):
            raise TypeError(f"the chat template gave {type(ids).__name__}, not token ids")
        return [int(i) for i in ids]
