"""Draft sources for speculative decoding: n-gram prompt lookup and a small draft model.

Both propose tokens that the target model then verifies in one forward pass. The draft
model keeps its own prefix-reusing KV cache; prompt lookup needs no model at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from lsp_llm.engine.kvcache import PrefixCache


def prompt_lookup(
    tokens: Sequence[int], k: int, max_ngram: int = 3, min_ngram: int = 1
) -> list[int]:
    """Find the most recent earlier occurrence of the last n tokens (longest n first) and
    propose the up to `k` tokens that followed it."""
    n_tokens = len(tokens)
    for n in range(min(max_ngram, n_tokens - 1), min_ngram - 1, -1):
        tail = list(tokens[n_tokens - n :])
        first = tail[0]
        best: list[int] = []
        # Scan backwards: the most recent match with a full-length continuation wins;
        # otherwise the longest continuation seen.
        i = n_tokens - n - 1
        while i >= 0:
            if tokens[i] == first and list(tokens[i : i + n]) == tail:
                start = i + n
                proposal = list(tokens[start : min(start + k, n_tokens)])
                if len(proposal) > len(best):
                    best = proposal
                    if len(best) == k:
                        break
            i -= 1
        if best:
            return best
    return []


class DraftModel:
    """Greedy proposals from a small model sharing the target's tokenizer."""

    def __init__(self, model: Any, vocab_limit: int) -> None:
        self.cache = PrefixCache(model)
        self.vocab_limit = vocab_limit

    def propose(
        self, tokens: Sequence[int], k: int, before_forward: Callable[[], None]
    ) -> list[int]:
        """Run up to `k` draft forward passes; `before_forward` is called before each (it
        raises to cancel) and counts them."""
        kept = self.cache.reuse(tokens)
        before_forward()
        logits = self.cache.forward(list(tokens[kept:]))
        proposal: list[int] = []
        while True:
            token = int(torch.argmax(logits[-1]))
            if token >= self.vocab_limit:
                break
            proposal.append(token)
            if len(proposal) >= k:
                break
            before_forward()
            logits = self.cache.forward([token])
        return proposal


class DraftLength:
    """Per-request adaptive draft length: grow after a fully accepted draft, shrink after a
    rejection. Lives for one request, so nothing leaks between requests."""

    def __init__(self, initial: int, maximum: int | None = None) -> None:
        self.value = max(1, initial)
        self.maximum = maximum or max(1, initial) * 2

    def update(self, drafted: int, accepted: int) -> None:
        if drafted == 0:
            return
        if accepted == drafted:
            self.value = min(self.value + 2, self.maximum)
        else:
            self.value = max(1, self.value - 1)
