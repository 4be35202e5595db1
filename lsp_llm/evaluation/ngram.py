"""The n-gram baseline: the most frequent next token after the last 1..order-1 tokens
(longest context seen wins), counted over the training slice with the model's own
tokenizer, decoded greedily under the same stop rules as the model."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from lsp_llm.engine.detok import IncrementalDetokenizer
from lsp_llm.generation.stopping import StopChecker
from lsp_llm.generation.types import FinishReason, StopRules


class NGramModel:
    def __init__(self, vocab_size: int, order: int = 4) -> None:
        self.vocab = vocab_size
        self.order = order
        # per context length k: sorted context codes and the best next token for each
        self.tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _codes(self, ids: np.ndarray, k: int) -> np.ndarray:
        code = np.zeros(len(ids) - k, dtype=np.int64)
        for j in range(k):
            code = code * self.vocab + ids[j : len(ids) - k + j]
        return code

    def fit(self, sequences: Iterable[list[int]]) -> NGramModel:
        seqs = [np.asarray(s, dtype=np.int64) for s in sequences if len(s) > self.order]
        for k in range(1, self.order):
            keys = np.concatenate([self._codes(s, k) * self.vocab + s[k:] for s in seqs])
            pairs, counts = np.unique(keys, return_counts=True)
            contexts, nexts = pairs // self.vocab, pairs % self.vocab
            # most frequent next token per context (ties: the smallest token id)
            order = np.lexsort((nexts, -counts, contexts))
            contexts, nexts = contexts[order], nexts[order]
            first = np.ones(len(contexts), dtype=bool)
            first[1:] = contexts[1:] != contexts[:-1]
            self.tables[k] = (contexts[first], nexts[first])
        return self

    def next_token(self, context: list[int]) -> int | None:
        for k in range(min(self.order - 1, len(context)), 0, -1):
            code = 0
            for t in context[-k:]:
                code = code * self.vocab + t
            keys, nexts = self.tables[k]
            i = int(np.searchsorted(keys, code))
            if i < len(keys) and keys[i] == code:
                return int(nexts[i])
        return None

    def complete(
        self,
        tokenizer: Any,
        prompt_ids: list[int],
        stop: StopRules,
        max_new_tokens: int,
    ) -> tuple[str, FinishReason]:
        """Greedy continuation of `prompt_ids`, cut where the model's stop rules cut, and
        why it ended ("length" when it used all `max_new_tokens`)."""
        checker = StopChecker(stop)
        detok = IncrementalDetokenizer(tokenizer)
        context = list(prompt_ids)
        for _ in range(max_new_tokens):
            token = self.next_token(context)
            if token is None or token in stop.stop_token_ids:
                return checker.finish(detok.text), "stop"
            context.append(token)
            detok.add(token)
            verdict = checker.feed(detok.text)
            if verdict.stop_at is not None:
                return detok.text[: verdict.stop_at], "stop"
        return checker.finish(detok.text), "length"
