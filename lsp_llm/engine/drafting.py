"""Draft sources for speculative decoding: n-gram prompt lookup and a small draft model.

Both propose tokens that the target model then verifies in one forward pass. The draft
model keeps its own prefix-reusing KV cache; prompt lookup needs no model at all.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any

import torch

from lsp_llm.engine.cpu.packedweights import CpuWeights
from lsp_llm.engine.kvcache import KVCache, cache_for, common_prefix_length
from lsp_llm.engine.load.draftvocab import DraftVocab


def prompt_lookup(
    tokens: Sequence[int], k: int, max_ngram: int = 3, min_ngram: int = 1
) -> list[int]:
    """Find the most recent earlier occurrence of the last n tokens (longest n first) and
    propose the up to `k` tokens that followed it.

    Runs before every verify pass, so the search is a C-speed `bytes.rfind` over the tokens
    packed 4 bytes each (a match must start on a token boundary), not a Python loop."""
    n_tokens = len(tokens)
    if n_tokens < 2 or k <= 0:
        return []
    data = array("I", tokens).tobytes()
    for n in range(min(max_ngram, n_tokens - 1), min_ngram - 1, -1):
        tail = data[-4 * n :]
        best: list[int] = []
        # Search backwards: the most recent match with a full-length continuation wins;
        # otherwise the longest continuation seen.
        end = 4 * (n_tokens - 1)  # a match ends before the last token: not the tail itself
        while True:
            at = data.rfind(tail, 0, end)
            if at < 0:
                break
            end = at + 4 * n - 1
            if at % 4:
                continue
            start = at // 4 + n
            proposal = list(tokens[start : min(start + k, n_tokens)])
            if len(proposal) > len(best):
                best = proposal
                if len(best) == k:
                    break
        if best:
            return best
    return []


class DraftModel:
    """Greedy proposals from a small model sharing the target's tokenizer; with a
    `DraftVocab`, over a subset of its tokens (the draft reads the others as "unknown"
    and never proposes them)."""

    def __init__(
        self,
        model: Any,
        vocab_limit: int,
        cache: KVCache | None = None,
        weights: CpuWeights = "float",
        vocab: DraftVocab | None = None,
    ) -> None:
        self.model = model
        self.cache = cache if cache is not None else cache_for(model, weights)
        self.vocab_limit = vocab_limit
        self.vocab = vocab
        self.last_feed = (0, 0.0)
        """Tokens the last proposal's first pass fed, and its seconds: many when the
        draft's cache had to catch up with the text (a new document, a prompt that
        changed), which is a prefill rather than a drafting step (`drafting_cost`)."""
        self._mapped: tuple[list[int], list[int]] = ([], [])
        """The last tokens mapped to the draft's rows, and their rows (with a vocabulary:
        a request's tokens grow by a few between proposals, and mapping all of them again
        cost a good part of a draft pass)."""

    def fork(self) -> DraftModel:
        """The same draft model with an empty cache of its own (another lane)."""
        return DraftModel(self.model, self.vocab_limit, self.cache.fork(), vocab=self.vocab)

    def _draft_ids(self, tokens: Sequence[int]) -> list[int]:
        if self.vocab is None:
            return list(tokens)
        seen, rows = self._mapped
        tokens = list(tokens)
        if tokens[: len(seen)] == seen:  # the usual case, compared at C speed
            same = len(seen)
        else:
            same = common_prefix_length(seen, tokens)
            rows = rows[:same]
        rows = rows + self.vocab.draft_ids(tokens[same:])
        self._mapped = (tokens, rows)
        return rows

    def lag(self, tokens: Sequence[int]) -> int:
        """How many tokens the next proposal after `tokens` would feed its first pass."""
        ids = self._draft_ids(tokens)
        held = self.cache.tokens
        same = len(held) if ids[: len(held)] == held else common_prefix_length(held, ids)
        return len(ids) - min(same, len(ids) - 1)

    def _target_token(self, row: int) -> int | None:
        """The target's token for the draft's output `row`; None: one it cannot propose."""
        if self.vocab is not None:
            return self.vocab.target_id(row)
        return row if row < self.vocab_limit else None

    def propose(
        self, tokens: Sequence[int], k: int, before_forward: Callable[[], None]
    ) -> list[int]:
        """Run up to `k` draft forward passes; `before_forward` is called before each (it
        raises to cancel) and counts them."""
        ids = self._draft_ids(tokens)
        kept = self.cache.reuse(ids)
        before_forward()
        start = time.perf_counter()
        logits = self.cache.forward(ids[kept:])
        row = int(torch.argmax(logits[-1]))  # on a GPU: waits for the pass
        self.last_feed = (len(ids) - kept, time.perf_counter() - start)
        proposal: list[int] = []
        while (token := self._target_token(row)) is not None:
            proposal.append(token)
            if len(proposal) >= k:
                break
            before_forward()
            row = int(torch.argmax(self.cache.forward([row])[-1]))
        return proposal


CATCH_UP = 256
"""`auto` drafts with the model only while its cache is within this many tokens of the
text (`decoding.py`): catching up further (a document it has not read, a prompt rebuilt)
is a prefill of its own, which a short suggestion does not earn back
(docs/engine-decisions.md). `draft` mode always catches up."""


def drafting_cost(seconds: float, passes: int, first_feed: tuple[int, float]) -> tuple[float, int]:
    """The seconds and passes of a proposal that count as the cost of drafting: its first
    pass is left out when it fed more than `CATCH_UP` tokens (a new document read by the
    draft's cache in `draft` mode: a prefill that, counted as one step, would make drafting
    look many times dearer than it is). A smaller catch-up stays in: it is what drafting
    with the model costs where prompt lookup's accepted tokens left the draft behind.
    (Leaving out every catch-up of more than 2 tokens made `auto` slower than `off` on the
    eval's continuations: docs/engine-decisions.md.)"""
    fed, feed_seconds = first_feed
    if fed > CATCH_UP:
        return max(0.0, seconds - feed_seconds), passes - 1
    return seconds, passes


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


class ForwardCosts:
    """Measured cost of a draft-model pass and of a target pass by tokens fed, as moving
    averages over the engine's life (they describe the hardware, not a request). `auto`
    uses them to draft (with the small model, or by prompt lookup) only where it pays: a
    pass that verifies k tokens costs more than a one-token pass, by how much depends on
    the machine and the weights (packed CPU weights are read once per row; a compiled
    one-token pass is cheaper still)."""

    WEIGHT = 0.1

    def __init__(self) -> None:
        self.draft_s: float | None = None
        self.target_s: dict[int, float] = {}
        """Seconds of a target pass by tokens fed (1 = plain decoding, n = verify n-1)."""

    def _mix(self, old: float | None, new: float) -> float:
        return new if old is None else old + self.WEIGHT * (new - old)

    def record_draft(self, seconds: float, passes: int) -> None:
        if passes > 0:
            self.draft_s = self._mix(self.draft_s, seconds / passes)

    def record_target(self, seconds: float, fed: int) -> None:
        self.target_s[fed] = self._mix(self.target_s.get(fed), seconds)

    def _target(self, fed: int) -> float:
        if fed in self.target_s:
            return self.target_s[fed]
        # linear in the tokens fed, through the two nearest measured sizes
        a, b = sorted(sorted(self.target_s), key=lambda n: abs(n - fed))[:2]
        slope = (self.target_s[b] - self.target_s[a]) / (b - a)
        return max(1e-6, self.target_s[a] + slope * (fed - a))

    def best_draft_length(self, acceptance: float, limit: int, free: bool = False) -> int:
        """The draft length (0 = none) with the most expected tokens per second, given a
        per-token acceptance probability; `free`: drafts that cost nothing to make (prompt
        lookup). Until the costs are measured: `limit`."""
        draft_s = 0.0 if free else self.draft_s
        if draft_s is None or len(self.target_s) < 2:
            return limit
        best, best_rate = 0, 1 / self._target(1)
        expected = 0.0
        for k in range(1, limit + 1):
            expected += acceptance**k
            rate = (1 + expected) / (k * draft_s + self._target(k + 1))
            if rate > best_rate:
                best, best_rate = k, rate
        return best


class Acceptance:
    """A kind of draft's per-token acceptance within one request, starting from a prior
    (so one early miss does not switch drafting off)."""

    def __init__(self, prior: float = 0.6, weight: float = 4.0) -> None:
        self.prior = prior
        self.weight = weight
        self.accepted = prior * weight
        self.drafted = weight
        self.tried_here = 0
        self.accepted_here = 0
        """This request's own counts, without the prior."""

    def relax(self, share: float = 0.2) -> None:
        """Move a `share` of the way back to the prior: called for a step on which this
        kind of draft was not tried, so a request that stopped drafting tries again after
        a few steps (text that did not repeat may start to)."""
        self.accepted += share * (self.prior * self.weight - self.accepted)
        self.drafted += share * (self.weight - self.drafted)

    def update(self, drafted: int, accepted: int) -> None:
        # a rejection at position a means a + 1 tokens were tried
        tried = min(drafted, accepted + 1)
        self.drafted += tried
        self.accepted += accepted
        self.tried_here += tried
        self.accepted_here += accepted

    @property
    def rate(self) -> float:
        return self.accepted / self.drafted


class AcceptanceHistory:
    """A kind of draft's per-token acceptance over the engine's last `memory` tried
    tokens, across requests: the prior each new request's `Acceptance` starts from. An
    editor's suggestion is a few tokens long and ends before its own acceptance says
    much, so without this every request would first draft as if the draft were as good
    as a fixed guess; with it, a draft that has been rejected lately is not tried on the
    next request's first steps, and one that has been accepted is trusted at once."""

    def __init__(self, initial: float = 0.6, memory: float = 64.0) -> None:
        self.memory = memory
        self.tried = memory
        self.accepted = initial * memory

    def record(self, request: Acceptance) -> None:
        """Fold in a finished request's own counts (the older ones fade out)."""
        if request.tried_here <= 0:
            return
        keep = self.memory / (self.memory + request.tried_here)
        self.tried = self.tried * keep + request.tried_here
        self.accepted = self.accepted * keep + request.accepted_here

    @property
    def rate(self) -> float:
        return self.accepted / self.tried
