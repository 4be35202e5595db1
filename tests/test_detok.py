"""Incremental detokenization never emits half a character."""

import pytest

from lsp_llm.engine.detok import IncrementalDetokenizer
from lsp_llm.generation.tokens import decode


def test_multibyte_characters_arrive_whole(loaded):
    tok = loaded.tokenizer
    text = "naïve → 数据 🐍 ok"
    ids = tok.encode(text, add_special_tokens=False)
    detok = IncrementalDetokenizer(tok)
    deltas = [detok.add(i) for i in ids]
    assert "".join(deltas) == text
    assert all("\ufffd" not in d for d in deltas)
    # The snake is several byte tokens: at least one step must have held text back.
    assert any(d == "" for d in deltas)


def test_a_tokenizer_that_decodes_into_a_list_is_refused():
    """transformers' decode may return a list (a batch); `str()` of it would have put
    "['a', 'b']" into a suggestion."""

    class Batchy:
        def decode(self, token_ids, **kwargs):
            return ["a", "b"]

    with pytest.raises(TypeError, match="into list"):
        decode(Batchy(), [1, 2])  # type: ignore[arg-type]
