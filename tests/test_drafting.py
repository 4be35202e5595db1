"""Prompt lookup proposals, the per-request draft length, and when `auto` drafts with the
small model (its measured cost against this request's acceptance)."""

import pytest

from lsp_llm.engine.drafting import Acceptance, DraftLength, ForwardCosts, prompt_lookup


def test_prompt_lookup_continues_the_most_recent_full_match():
    tokens = [1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 8, 6, 0, 1, 2, 3]
    assert prompt_lookup(tokens, 3) == [7, 8, 6]
    assert prompt_lookup(tokens, 5) == [7, 8, 6, 0, 1]


def test_prompt_lookup_falls_back_to_shorter_ngrams_and_nothing():
    assert prompt_lookup([5, 6, 7, 1, 2, 9, 7], 2) == [1, 2]
    assert prompt_lookup([1, 2, 3], 4) == []
    assert prompt_lookup([], 4) == []


def _lookup_by_definition(tokens, k, max_ngram, min_ngram):
    """The definition, spelled out: every earlier match of the last n tokens, most recent
    first; the first with k tokens after it, else the first of the longest continuations."""
    for n in range(min(max_ngram, len(tokens) - 1), min_ngram - 1, -1):
        tail = tokens[len(tokens) - n :]
        starts = [i for i in reversed(range(len(tokens) - n)) if tokens[i : i + n] == tail]
        continuations = [tokens[i + n : i + n + k] for i in starts]
        continuations = [c for c in continuations if c]
        if continuations:
            full = [c for c in continuations if len(c) == k]
            return full[0] if full else max(continuations, key=len)
    return []


def test_prompt_lookup_matches_its_definition_on_random_token_streams():
    import random

    rng = random.Random(0)
    for _ in range(2000):
        vocab = rng.choice([2, 5, 50, 70_000])  # large ids: 4-byte packing must not alias
        tokens = [rng.randrange(vocab) for _ in range(rng.randint(0, 40))]
        k, max_ngram = rng.randint(1, 8), rng.randint(1, 4)
        min_ngram = rng.randint(1, max_ngram)
        want = _lookup_by_definition(tokens, k, max_ngram, min_ngram)
        assert prompt_lookup(tokens, k, max_ngram, min_ngram) == want, (tokens, k)


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


def _costs(draft_ms: float, one_ms: float, per_token_ms: float) -> ForwardCosts:
    costs = ForwardCosts()
    costs.record_draft(draft_ms * 4 / 1000, 4)
    costs.record_target(one_ms / 1000, 1)
    costs.record_target((one_ms + 5 * per_token_ms) / 1000, 6)
    return costs


def test_unmeasured_costs_draft_the_full_length():
    assert ForwardCosts().best_draft_length(0.1, 5) == 5
    costs = ForwardCosts()
    costs.record_target(0.007, 1)
    assert costs.best_draft_length(0.1, 5) == 5  # the draft's cost is not known yet


def test_cheap_draft_and_good_acceptance_draft_long():
    costs = _costs(draft_ms=0.5, one_ms=10, per_token_ms=0.2)
    assert costs.best_draft_length(0.9, 6) == 6


def test_draft_that_costs_more_than_it_saves_is_skipped():
    # the case measured on the bundled pair on one CPU thread: a draft pass is 0.3 of a
    # target pass and verifying costs about 1 ms per extra token
    costs = _costs(draft_ms=2.0, one_ms=7.0, per_token_ms=1.1)
    assert costs.best_draft_length(0.25, 6) == 0
    assert costs.best_draft_length(0.8, 6) > 0


def test_free_lookup_drafts_are_taken_only_where_verifying_them_pays():
    # SmolLM2 on a 2-core CPU with packed int4 weights and a compiled one-token pass:
    # 15 ms a token; passes verifying drafts are eager and read the weights row by row
    costs = _costs(draft_ms=2.0, one_ms=15.0, per_token_ms=5.0)
    costs.record_target(0.025, 2)
    assert costs.best_draft_length(0.5, 6, free=True) == 0
    assert costs.best_draft_length(0.95, 6, free=True) > 0
    # the bundled pair: verifying is nearly free, a lookup draft pays even when rarely right
    costs = _costs(draft_ms=2.0, one_ms=7.0, per_token_ms=1.1)
    assert costs.best_draft_length(0.3, 6, free=True) > 0
    assert costs.best_draft_length(0.3, 6) == 0  # the draft model's passes would not


def test_target_cost_is_interpolated_and_extrapolated_linearly():
    costs = _costs(draft_ms=1.0, one_ms=10, per_token_ms=1.0)
    assert costs._target(3) == pytest.approx(0.012)
    assert costs._target(11) == pytest.approx(0.020)


def test_acceptance_relaxes_back_to_its_prior_on_steps_without_drafts():
    acc = Acceptance(prior=0.6, weight=4)
    for _ in range(4):
        acc.update(drafted=4, accepted=0)
    assert acc.rate == pytest.approx(2.4 / 8)
    rates = []
    for _ in range(6):
        acc.relax()
        rates.append(acc.rate)
    assert rates == sorted(rates) and 0.45 < rates[-1] < 0.6  # back to drafting


def test_acceptance_starts_from_a_prior_and_counts_tried_tokens():
    acc = Acceptance(prior=0.5, weight=2)
    assert acc.rate == 0.5
    acc.update(drafted=5, accepted=1)  # tokens 1 accepted, 2 rejected, 3-5 never judged
    assert acc.rate == pytest.approx((1 + 1) / (2 + 2))
    acc.update(drafted=3, accepted=3)
    assert acc.rate == pytest.approx((1 + 1 + 3) / (2 + 2 + 3))


def test_acceptance_history_is_the_next_requests_prior():
    from lsp_llm.engine.drafting import AcceptanceHistory

    history = AcceptanceHistory(initial=0.6, memory=20)
    assert history.rate == pytest.approx(0.6)
    for _ in range(20):  # requests whose drafts were rejected at once (2 tokens tried each)
        request = Acceptance(prior=history.rate)
        request.update(drafted=4, accepted=0)
        request.update(drafted=4, accepted=0)
        history.record(request)
    assert history.rate < 0.2
    assert Acceptance(prior=history.rate).rate == pytest.approx(history.rate)
    history.record(Acceptance(prior=0.9))  # a request that never drafted changes nothing
    low = history.rate
    for _ in range(8):
        request = Acceptance(prior=history.rate)
        request.update(drafted=5, accepted=5)
        history.record(request)
    assert history.rate > 0.8 > low


def test_a_catch_up_is_not_counted_as_a_drafting_step():
    """A proposal whose first pass read 1,200 tokens (the draft's cache catching up with a
    new document) counts its other passes only; one that fed a step's one or two tokens,
    or caught up with a few tokens prompt lookup got accepted, counts whole."""
    from lsp_llm.engine.drafting import CATCH_UP, drafting_cost

    assert drafting_cost(0.25, 4, (1200, 0.22)) == pytest.approx((0.03, 3))
    assert drafting_cost(0.25, 1, (1200, 0.25)) == (0.0, 0)  # nothing left to record
    assert drafting_cost(0.25, 4, (CATCH_UP + 1, 0.22)) == pytest.approx((0.03, 3))
    assert drafting_cost(0.004, 4, (2, 0.001)) == (0.004, 4)
    assert drafting_cost(0.006, 4, (9, 0.003)) == (0.006, 4)
    assert drafting_cost(0.05, 4, (CATCH_UP, 0.045)) == (0.05, 4)
