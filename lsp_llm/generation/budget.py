"""Cutting text to a token budget on line boundaries, never inside a character."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Protocol


class Encodes(Protocol):
    def encode(self, text: str, **kwargs: Any) -> list[int]: ...
    def __hash__(self) -> int: ...  # per-line counts are remembered per tokenizer


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def readable(text: str) -> str:
    """`text` with lone surrogates (JSON can carry them, UTF-8 and tokenizers cannot)
    replaced by U+FFFD, one for one, so every offset into it stays valid."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _LONE_SURROGATE.search(text) else text


CHARS_PER_TOKEN = 4
"""How many characters a token is taken to be when no tokenizer is known (code averages
3-4 characters per token with BPE vocabularies; 4 errs on the side of longer prompts)."""


class CharacterBudget:
    """Stands in for a tokenizer when none is known (a remote engine with no `model`
    setting): it only counts, a token per `CHARS_PER_TOKEN` characters. Prompts built with
    it are text (no token ids, no FIM, no chat template)."""

    eos_token_id = None
    chat_template = None

    def encode(self, text: str, **kwargs: Any) -> list[int]:
        return [0] * -(-len(text) // CHARS_PER_TOKEN)

    def get_vocab(self) -> dict[str, int]:
        return {}


def encode_plain(tokenizer: Encodes, text: str) -> list[int]:
    """The tokens of `text`, special-token names read as plain text (a file that contains
    `<|im_end|>` must not end a prompt). Straight through the Rust tokenizer when there is
    one: budgets count line by line, and the Python wrapper around each call cost more than
    the tokenizing."""
    if not text:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.encode_special_tokens = True  # what split_special_tokens=True sets per call
        return list(backend.encode(text, add_special_tokens=False).ids)
    return list(tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True))


def count_tokens(tokenizer: Encodes, text: str) -> int:
    """How many tokens `text` is (`encode_plain`)."""
    return len(encode_plain(tokenizer, text))


@lru_cache(maxsize=16384)
def _line_tokens(tokenizer: Encodes, line: str) -> int:
    """`count_tokens` of one line, remembered: consecutive prompts over a document share
    nearly all their lines, so a prompt after a keystroke or an edit counts only the lines
    that changed (a 1,536-token window is about 150 lines)."""
    return count_tokens(tokenizer, line)


def _fit_chars(tokenizer: Encodes, text: str, budget: int, keep_end: bool) -> str:
    """The longest run of whole characters at the end (or start) of one line that fits."""
    if budget <= 0 or not text:
        return ""
    # A token covers at least one character; start from a generous cap and shrink.
    lo, hi = 0, min(len(text), budget * 8)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        piece = text[-mid:] if keep_end else text[:mid]
        if count_tokens(tokenizer, piece) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[-lo:] if keep_end and lo else text[:lo]


def take_tail(tokenizer: Encodes, text: str, budget: int, align: int = 1) -> str:
    """The end of `text` within `budget` tokens: the partial last line first (cut by
    characters only if it alone is too long), then whole earlier lines.

    With `align` > 1 the kept part starts on a line number that is a multiple of a power of
    two up to `align` and at most a quarter of the kept lines (so at most a quarter of the
    window is given up): the start then stays put while the user types or edits near the
    end, so the next prompt shares its beginning with this one and the engine's KV cache
    is reused instead of re-reading the whole window."""
    lines = text.split("\n")
    last = lines.pop()
    used = count_tokens(tokenizer, last)
    if used > budget:
        return _fit_chars(tokenizer, last, budget, keep_end=True)
    kept: list[str] = [last]
    for line in reversed(lines):
        cost = _line_tokens(tokenizer, line + "\n")
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    start = len(lines) + 1 - len(kept)
    step = 1
    while step * 2 <= min(align, len(kept) // 4):
        step *= 2
    if step > 1 and start > 0:
        del kept[len(kept) - (-start) % step :]
    return "\n".join(reversed(kept))


def take_head(tokenizer: Encodes, text: str, budget: int) -> str:
    """The start of `text` within `budget` tokens: the rest of the first line (cut by
    characters only if it alone is too long), then whole following lines."""
    lines = text.split("\n")
    first = lines[0]
    used = count_tokens(tokenizer, first)
    if used > budget:
        return _fit_chars(tokenizer, first, budget, keep_end=False)
    kept = [first]
    for line in lines[1:]:
        cost = _line_tokens(tokenizer, "\n" + line)
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    return "\n".join(kept)
