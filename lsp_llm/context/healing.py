"""Token healing on the prompt side: a completion prompt that ends inside what the
tokenizer would merge with the next token (trailing indentation, a partial identifier, a
space after `=`) is cut back to a token boundary, and the cut text is handed to the engine
(`GenerationRequest.heal`), which makes the first generated tokens spell it again.

Without it, a prompt ending in `"\\n    "` is a token sequence the model never saw before
a word (it learned `"\\n   "` + `" return"`), and it answers with a stray space or newline.
"""

from __future__ import annotations

import re

from lsp_llm.generation.tokens import Tokenizer, decode
from lsp_llm.generation.types import MAX_HEAL_TOKENS

TRAILING = re.compile(r"(\s+|\s?\w+|\s?[^\w\s]+)\Z")
"""The last piece of text a tokenizer keeps together: a run of whitespace, a word with the
space before it, or a run of punctuation (the split of GPT-2 style pre-tokenizers)."""


MAX_TEXT_HEAL = 16
"""The longest piece `heal_text` cuts (a long identifier is left whole)."""


def heal_text(text: str) -> str:
    """For a prompt sent as text with no tokenizer known: the last piece of `text`
    (`TRAILING`) to cut off, which the engine's output must then begin with; nothing when
    it is long, not ASCII, or all of `text`."""
    piece = TRAILING.search(text)
    cut = piece.group(0) if piece else ""
    if len(cut) > MAX_TEXT_HEAL or not cut.isascii() or len(cut) == len(text):
        return ""
    return cut


def heal_tail(tokenizer: Tokenizer, ids: list[int], text: str) -> tuple[list[int], str]:
    """`ids` (the tokens of a prompt ending in `text`) without the tokens that spell the
    last piece of `text` (`TRAILING`: at least the last token), and the text they spelled.
    Nothing is cut when the cut text would not round-trip exactly (non-ASCII text, a
    tokenizer whose decoding changes spaces), since the engine must match it character for
    character."""
    if len(ids) < 2:
        return ids, ""
    piece = TRAILING.search(text)
    want = len(piece.group(0)) if piece else 1
    k = 1
    while k < MAX_HEAL_TOKENS and k + 1 < len(ids) and len(decode(tokenizer, ids[-k:])) < want:
        k += 1
    cut = ids[-k:]
    healed = decode(tokenizer, cut)
    pieces = "".join(decode(tokenizer, [i]) for i in cut)
    if not healed or not healed.isascii() or pieces != healed or not text.endswith(healed):
        return ids, ""
    return ids[:-k], healed
