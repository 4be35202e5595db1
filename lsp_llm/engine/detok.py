"""Incremental detokenization: text deltas that never split a multi-byte character.

Byte-level BPE tokens can end in the middle of a UTF-8 sequence; decoding such a prefix
yields U+FFFD. We decode a short window of recent tokens and hold text back until the
character is complete.
"""

from __future__ import annotations

from lsp_llm.generation.tokens import Tokenizer, decode


class IncrementalDetokenizer:
    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True) -> None:
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self.ids: list[int] = []
        self.text = ""
        self._prefix_offset = 0
        self._read_offset = 0

    def add(self, token_id: int) -> str:
        """Append one token; return the newly completed text (possibly empty)."""
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self.ids[self._prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text) :]
            self._prefix_offset = self._read_offset
            self._read_offset = len(self.ids)
            self.text += delta
            return delta
        return ""

    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return decode(self._tok, ids, self._skip)
