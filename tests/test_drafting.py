"""Prompt lookup proposals and the per-request draft length."""

from lsp_llm.engine.drafting import DraftLength, prompt_lookup


def test_prompt_lookup_continues_the_most_recent_full_match():
    tokens = [1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 8, 6, 0, 1, 2, 3]
    assert prompt_lookup(tokens, 3) == [7, 8, 6]
    assert prompt_lookup(tokens, 5) == [7, 8, 6, 0, 1]


def test_prompt_lookup_falls_back_to_shorter_ngrams_and_nothing():
    assert prompt_lookup([5, 6, 7, 1, 2, 9, 7], 2) == [1, 2]
    assert prompt_lookup([1, 2, 3], 4) == []
    assert prompt_lookup([], 4) == []


def test_draft_length_adapts_within_a_request():
    length = DraftLength(4)
    length.update(4, 4)
    assert length.value == 6
    length.update(6, 2)
    assert length.value == 5
    for _ in range(10):
        length.update(5, 0)
    assert length.value == 1
    assert DraftLength(4).value == 4  # a new request starts fresh
