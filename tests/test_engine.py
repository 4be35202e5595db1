"""The decoding loop and the inference thread, on tiny random-weight models.

Each test counts what the model actually did (forward passes, tokens fed) through
forward hooks on the real model, not through the engine's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import os
import threading

import pytest
import torch

from lsp_llm.engine.decoding import Decoder, pick_tokens
from lsp_llm.engine.leanforward import LazyLogits
from lsp_llm.engine.worker import Engine
from lsp_llm.generation.types import (
    Done,
    GenerationRequest,
    Sampling,
    Speculation,
    StopRules,
    TextDelta,
)


class ForwardCounter:
    """Counts forward passes and fed tokens of a model; can act at the n-th pass. It hooks
    the token embedding, which every forward pass runs exactly once, whether through
    transformers' forward or the engine's lean one."""

    def __init__(self, model, at: int | None = None, action=None):
        self.calls = 0
        self.tokens = 0
        self.at, self.action = at, action
        self.handle = model.get_input_embeddings().register_forward_pre_hook(self._hook)

    def _hook(self, module, args):
        self.calls += 1
        self.tokens += args[0].shape[1]
        if self.at is not None and self.calls == self.at:
            self.action()

    def remove(self):
        self.handle.remove()


def prompts(tokenizer, n: int) -> list[tuple[int, ...]]:
    import sysconfig
    from pathlib import Path

    source = (Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py").read_text()
    lines = source.splitlines(keepends=True)
    out = []
    for i in range(n):
        start = (i * 7) % (len(lines) - 40)
        text = "".join(lines[start : start + 5 + i % 9])
        out.append(tuple(tokenizer.encode(text, add_special_tokens=False)))
    return out


def run(decoder: Decoder, req: GenerationRequest, cancelled=None):
    deltas: list[str] = []
    done = decoder.run(
        req,
        cancelled or threading.Event(),
        lambda ev: deltas.append(ev.text) if isinstance(ev, TextDelta) else None,
    )
    return done, deltas


def test_greedy_text_identical_across_speculation_modes(loaded, twin_draft):
    with_draft = Decoder(loaded.model, loaded.tokenizer, loaded.draft_model)
    with_twin = Decoder(loaded.model, loaded.tokenizer, twin_draft)
    accepted = {"promptLookup": 0, "draft": 0, "twin": 0}
    for ids in prompts(loaded.tokenizer, 24):
        plain, _ = run(with_draft, GenerationRequest(ids, 40, speculation=Speculation("off")))
        for name, dec, mode in [
            ("promptLookup", with_draft, "promptLookup"),
            ("draft", with_draft, "draft"),
            ("auto", with_draft, "auto"),
            ("twin", with_twin, "draft"),
        ]:
            done, deltas = run(dec, GenerationRequest(ids, 40, speculation=Speculation(mode, 4)))
            assert done.text == plain.text, (name, ids)
            assert "".join(deltas) == done.text
            assert done.usage.completion_tokens == plain.usage.completion_tokens
            if name in accepted:
                accepted[name] += done.stats.accepted_draft_tokens
    # The comparison is meaningful only if drafts were actually accepted.
    assert all(v > 0 for v in accepted.values()), accepted
    assert accepted["twin"] > accepted["draft"]


def test_speculation_takes_fewer_target_passes(loaded, twin_draft):
    dec = Decoder(loaded.model, loaded.tokenizer, twin_draft)
    ids = prompts(loaded.tokenizer, 1)[0]
    plain, _ = run(dec, GenerationRequest(ids, 48, speculation=Speculation("off")))
    fast, _ = run(dec, GenerationRequest(ids, 48, speculation=Speculation("draft", 6)))
    assert fast.text == plain.text
    assert fast.stats.target_forwards * 2 < plain.stats.target_forwards


def cancelled_at_third_pass(model, tokenizer, draft, mode: str):
    """A generation in `mode`, cancelled as the target's third pass starts: its result and
    the target's passes."""
    dec = Decoder(model, tokenizer, draft)
    cancelled = threading.Event()
    counter = ForwardCounter(model, at=3, action=cancelled.set)
    try:
        done, _ = run(
            dec,
            GenerationRequest(prompts(tokenizer, 1)[0], 200, speculation=Speculation(mode)),
            cancelled,
        )
    finally:
        counter.remove()
    return done, counter.calls


@pytest.mark.parametrize("mode", ["off", "promptLookup", "draft"])
def test_cancel_stops_before_next_target_pass(loaded, twin_draft, mode):
    done, passes = cancelled_at_third_pass(loaded.model, loaded.tokenizer, twin_draft, mode)
    assert done.reason == "cancelled"
    assert passes == 3  # the pass in flight finished; no pass started after it
    assert done.stats.forwards_after_cancel == 1


def test_cancel_stops_draft_passes_too(loaded, twin_draft):
    dec = Decoder(loaded.model, loaded.tokenizer, twin_draft)
    cancelled = threading.Event()
    draft_counter = ForwardCounter(twin_draft, at=4, action=cancelled.set)
    target_counter = ForwardCounter(loaded.model)
    try:
        done, _ = run(
            dec,
            GenerationRequest(
                prompts(loaded.tokenizer, 1)[0], 200, speculation=Speculation("draft", 8)
            ),
            cancelled,
        )
    finally:
        draft_counter.remove()
        target_counter.remove()
    assert done.reason == "cancelled"
    assert draft_counter.calls == 4
    assert target_counter.calls == 1  # only the prefill: the draft block never got verified


def test_prefix_reuse_feeds_only_new_tokens(loaded):
    dec = Decoder(loaded.model, loaded.tokenizer, None)
    base = [t for ids in prompts(loaded.tokenizer, 30) for t in ids][:700]
    edited = base[:650] + base[10:40]  # an edit near the end of a long prompt
    run(dec, GenerationRequest(tuple(base), 5, speculation=Speculation("off")))
    counter = ForwardCounter(loaded.model)
    try:
        second, _ = run(dec, GenerationRequest(tuple(edited), 5, speculation=Speculation("off")))
    finally:
        counter.remove()
    assert second.stats.reused_prefix_tokens == 650
    prefill_fed = counter.tokens - (second.stats.target_forwards - 1)  # one token per decode step
    assert prefill_fed == len(edited) - 650
    # And the output is the same as from a cold cache.
    cold = Decoder(loaded.model, loaded.tokenizer, None)
    fresh, _ = run(cold, GenerationRequest(tuple(edited), 5, speculation=Speculation("off")))
    assert fresh.text == second.text and fresh.stats.reused_prefix_tokens == 0


def first_new_substring(text: str, pos: int) -> str | None:
    """The shortest substring starting at `pos` that does not occur earlier."""
    for end in range(pos + 1, len(text) + 1):
        if text.find(text[pos:end]) == pos:
            return text[pos:end]
    return None


def test_no_text_past_stop_point_even_when_block_overshoots(loaded, twin_draft):
    dec = Decoder(loaded.model, loaded.tokenizer, twin_draft)
    checked = 0
    for ids in prompts(loaded.tokenizer, 12):
        plain, _ = run(dec, GenerationRequest(ids, 40, speculation=Speculation("off")))
        text = plain.text
        if len(text) < 12:
            continue
        stop = first_new_substring(text, len(text) // 2)
        if stop is None:
            continue
        expected = text[: text.find(stop)]
        req = GenerationRequest(
            ids, 40, stop=StopRules(stop_strings=(stop,)), speculation=Speculation("draft", 8)
        )
        done, deltas = run(dec, req)
        assert done.text == expected
        assert "".join(deltas) == expected
        assert done.stats.accepted_draft_tokens > 0
        checked += 1
    assert checked >= 5


def test_single_line_and_eos_rules(loaded, twin_draft):
    dec = Decoder(loaded.model, loaded.tokenizer, twin_draft)
    ids = prompts(loaded.tokenizer, 3)[2]
    plain, _ = run(dec, GenerationRequest(ids, 60, speculation=Speculation("off")))
    one, deltas = run(
        dec,
        GenerationRequest(
            ids, 60, stop=StopRules(single_line=True), speculation=Speculation("draft")
        ),
    )
    assert one.text == plain.text.split("\n")[0]
    assert "\n" not in "".join(deltas)
    # Make a later generated token an end token: generation stops right before it.
    gen = plain.token_ids
    k = next(i for i in range(1, len(gen)) if gen[i] not in gen[:i])
    eos, _ = run(
        dec,
        GenerationRequest(
            ids,
            60,
            stop=StopRules(stop_token_ids=frozenset({gen[k]})),
            speculation=Speculation("draft"),
        ),
    )
    assert eos.token_ids == gen[:k] and eos.reason == "stop"


def test_max_new_tokens(loaded):
    dec = Decoder(loaded.model, loaded.tokenizer, None)
    done, _ = run(dec, GenerationRequest(prompts(loaded.tokenizer, 1)[0], 7))
    assert done.reason == "length" and done.usage.completion_tokens == 7


def test_sampling_is_seeded_and_exact_with_speculation(loaded, twin_draft):
    dec = Decoder(loaded.model, loaded.tokenizer, twin_draft)
    ids = prompts(loaded.tokenizer, 2)[1]
    sampling = Sampling(temperature=0.8, top_p=0.9, seed=123)
    a, _ = run(dec, GenerationRequest(ids, 30, sampling=sampling, speculation=Speculation("off")))
    b, _ = run(dec, GenerationRequest(ids, 30, sampling=sampling, speculation=Speculation("off")))
    c, _ = run(
        dec,
        GenerationRequest(
            ids, 30, sampling=Sampling(0.8, 0.9, 124), speculation=Speculation("off")
        ),
    )
    assert a.text == b.text and a.text != c.text
    # A sample agrees with a greedy draft only where the distribution is peaked.
    spec, _ = run(
        dec,
        GenerationRequest(
            ids, 30, sampling=Sampling(0.05, 1.0, 7), speculation=Speculation("draft")
        ),
    )
    assert spec.usage.completion_tokens == 30 and spec.stats.accepted_draft_tokens > 0


async def test_async_stream_cancel_and_supersede(loaded):
    engine = Engine(loaded)
    try:
        ids = prompts(loaded.tokenizer, 1)[0]
        stream = engine.stream(GenerationRequest(ids, 20))
        events = [ev async for ev in stream]
        assert isinstance(events[-1], Done) and events[-1].reason == "length"
        assert "".join(e.text for e in events[:-1]) == events[-1].text

        long_req = GenerationRequest(ids, 100_000, group="doc")
        first = engine.stream(long_req)
        second = engine.stream(GenerationRequest(ids, 5, group="doc"))
        first_done = await asyncio.wait_for(first.result(), 30)
        second_done = await asyncio.wait_for(second.result(), 30)
        assert first_done.reason == "cancelled"
        assert second_done.reason == "length"

        third = engine.stream(GenerationRequest(ids, 100_000))
        async for ev in third:
            if isinstance(ev, TextDelta):
                third.cancel()
            if isinstance(ev, Done):
                assert ev.reason == "cancelled"
        assert third.job.finished.wait(10)
    finally:
        engine.close()
    assert not engine.worker.alive


async def test_bad_request_is_an_error_event_and_worker_survives(loaded):
    engine = Engine(loaded)
    try:
        with pytest.raises(RuntimeError, match="empty prompt"):
            await engine.stream(GenerationRequest((), 5)).result()
        ids = prompts(loaded.tokenizer, 1)[0]
        done = await engine.stream(GenerationRequest(ids, 3)).result()
        assert done.usage.completion_tokens == 3
    finally:
        engine.close()


def test_deltas_never_split_characters(loaded):
    dec = Decoder(loaded.model, loaded.tokenizer, None)
    # Force generation of a multi-byte character by sampling from a prompt full of them.
    ids = tuple(
        loaded.tokenizer.encode("数据 🐍 数据 🐍 数据 🐍 数据 🐍", add_special_tokens=False)
    )
    for seed in range(5):
        done, deltas = run(
            dec,
            GenerationRequest(
                ids, 30, sampling=Sampling(1.0, 1.0, seed), speculation=Speculation("promptLookup")
            ),
        )
        # Streaming piecewise gives exactly what decoding all tokens at once gives
        # (random bytes can be invalid UTF-8; a held incomplete tail is dropped at the end).
        whole = loaded.tokenizer.decode(list(done.token_ids), skip_special_tokens=True)
        assert "".join(deltas) == done.text
        assert whole.startswith(done.text) and not whole[len(done.text) :].strip("\ufffd")


def test_inference_mode_leaves_no_grad_state(loaded):
    assert torch.is_grad_enabled()


def test_auto_skips_a_draft_model_that_costs_more_than_it_saves(loaded):
    from lsp_llm.engine.drafting import ForwardCosts

    decoder = Decoder(loaded.model, loaded.tokenizer, loaded.draft_model)
    ids = prompts(loaded.tokenizer, 1)[0]
    plain, _ = run(decoder, GenerationRequest(ids, 24, speculation=Speculation("off")))
    # measured costs where a draft pass is as dear as a target pass: never worth it. Every
    # verify size is set, so no pass timed during the run (a prompt-lookup verify of a
    # size not yet measured, fast or slow with the machine's load) enters the figures; the
    # plain run's own timings are forgotten first (mixed in, they moved a loaded machine's
    # one-token pass far from 10 ms, and the test failed under load).
    decoder.costs = ForwardCosts()
    decoder.costs.record_draft(0.010, 1)
    for fed in range(1, 9):
        decoder.costs.record_target(0.010 + 0.0012 * (fed - 1), fed)
    decoder.costs.WEIGHT = 0.0  # keep these figures for the test
    auto, _ = run(
        decoder,
        GenerationRequest(ids, 24, speculation=Speculation("auto"), reuse_prefix=False),
    )
    assert auto.token_ids == plain.token_ids
    assert auto.stats.draft_forwards == 0
    drafted, _ = run(
        decoder,
        GenerationRequest(ids, 24, speculation=Speculation("draft"), reuse_prefix=False),
    )
    assert drafted.token_ids == plain.token_ids
    assert drafted.stats.draft_forwards > 0


def test_endless_fixture_model_types_a_long_cycle_of_letters(tiny):
    """The tests that cancel or drop a running generation rely on this model never ending:
    no end token, no newline for a stop rule to cut at, and no loop short enough for the
    in-line loop rule."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lsp_llm.generation.stopping import CYCLE_PIECE_CHARS, line_cycle
    from lsp_llm.train.tiny import ENDLESS_LETTERS

    model = AutoModelForCausalLM.from_pretrained(tiny.endless).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny.endless)
    letters = [tokenizer.convert_tokens_to_ids(c) for c in ENDLESS_LETTERS]
    ids = torch.randint(
        0, model.config.vocab_size, (8, 256), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        logits = model(ids).logits
    best = logits.argmax(-1)
    assert set(best.unique().tolist()) <= set(letters)
    top2 = logits.topk(2, dim=-1).values
    assert (top2[..., 0] > top2[..., 1]).all()  # never a tie
    prompt = tokenizer("def f(x):\n", return_tensors="pt").input_ids
    out = model.generate(prompt, max_new_tokens=100, do_sample=False)[0, prompt.shape[1] :]
    typed = tokenizer.decode(out)
    assert typed == (ENDLESS_LETTERS * 3)[:100]
    assert len(ENDLESS_LETTERS) > CYCLE_PIECE_CHARS and line_cycle(typed) == 0


@pytest.mark.parametrize("agree", [0, 2, 5])
def test_greedy_picks_the_same_from_a_tensor_and_from_lazy_rows(agree):
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(agree))
    best = torch.argmax(logits, dim=-1).tolist()
    draft = best[:agree] + [(t + 1) % 50 for t in best[agree:5]]  # wrong from `agree` on
    greedy = Sampling(temperature=0)
    want = best[: agree + 1]  # the accepted tokens and the target's own next one
    assert pick_tokens(logits, greedy, None, draft) == want
    rows = LazyLogits(logits, lambda states: states)  # the lean cache's lazy rows, head = id
    assert pick_tokens(rows, greedy, None, draft) == want


def test_a_completion_runs_between_two_steps_of_a_chat(loaded):
    """An interactive request submitted while a background one (a chat) decodes starts
    after at most one more forward pass of the chat; the chat then goes on from its own
    lane's cache (no second prefill) with the text it would have had alone."""
    ids = prompts(loaded.tokenizer, 3)
    chat = GenerationRequest(ids[2] * 3, 300, speculation=Speculation("off"), lane="background")
    completion = GenerationRequest(ids[1][:37], 4, speculation=Speculation("off"))
    alone, _ = run(Decoder(loaded.model, loaded.tokenizer, None), chat)
    assert alone.reason == "length"

    engine = Engine(loaded)
    fed: list[int | str] = []
    handle = loaded.model.get_input_embeddings().register_forward_pre_hook(
        lambda module, args: fed.append(args[0].shape[1])
    )
    try:
        started = threading.Event()
        chat_events: list = []

        def on_chat(ev):
            chat_events.append(ev)
            if len(chat_events) == 20:
                started.set()

        chat_job = engine.worker.submit(chat, on_chat)
        assert started.wait(30)
        finished: list = []
        quick = engine.worker.submit(
            completion, lambda ev: finished.append(ev) if isinstance(ev, Done) else None
        )
        fed.append("submitted")
        assert quick.finished.wait(30)
        assert not chat_job.finished.is_set()  # it was paused, not run to its end first
        assert chat_job.finished.wait(60)
    finally:
        handle.remove()
        engine.close()
    mark = fed.index("submitted")
    chat_steps_before = fed[mark + 1 :].index(37)
    assert chat_steps_before <= 1
    done = chat_events[-1]
    assert isinstance(done, Done) and done.text == alone.text
    assert done.stats.prefill_forwards == alone.stats.prefill_forwards
    assert finished[0].reason == "length" and finished[0].usage.completion_tokens == 4


def test_waiting_completions_go_before_waiting_chats(loaded):
    ids = prompts(loaded.tokenizer, 2)
    engine = Engine(loaded)
    order: list[str] = []

    def note(name):
        return lambda ev: order.append(name) if isinstance(ev, Done) else None

    try:
        gate = threading.Event()
        blocker = engine.worker.submit(
            GenerationRequest(ids[0], 2), lambda ev: gate.wait(30) if isinstance(ev, Done) else None
        )
        chat = engine.worker.submit(GenerationRequest(ids[1], 2, lane="background"), note("chat"))
        quick = engine.worker.submit(GenerationRequest(ids[1], 2), note("completion"))
        gate.set()
        assert blocker.finished.wait(30) and chat.finished.wait(30) and quick.finished.wait(30)
    finally:
        engine.close()
    assert order == ["completion", "chat"]


def test_a_chat_goes_on_and_can_be_cancelled_while_completions_keep_coming(loaded):
    """Completions that keep arriving (a user typing) do not starve a chat: each pause
    runs the completions waiting when it began, then the chat takes a step."""
    ids = prompts(loaded.tokenizer, 2)
    engine = Engine(loaded)
    submitted = [0]
    chat_done = threading.Event()

    def keep_typing(ev):
        if isinstance(ev, Done) and not chat_done.is_set() and submitted[0] < 3000:
            submitted[0] += 1  # the next keystroke's completion, as soon as one is answered
            engine.worker.submit(GenerationRequest(ids[1][:20], 1), keep_typing)

    try:
        for cancel in (False, True):
            chat_done.clear()
            submitted[0] = 0
            chat = engine.worker.submit(
                GenerationRequest(ids[0], 60, speculation=Speculation("off"), lane="background"),
                lambda ev: chat_done.set() if isinstance(ev, Done) else None,
            )
            for _ in range(2):
                engine.worker.submit(GenerationRequest(ids[1][:20], 1), keep_typing)
            if cancel:
                while submitted[0] < 20:
                    threading.Event().wait(0.01)
                at_cancel = submitted[0]
                chat.cancel()
            assert chat_done.wait(120)
            assert submitted[0] < (at_cancel + 10 if cancel else 500), submitted[0]
    finally:
        chat_done.set()
        engine.close()


def test_the_engine_warms_up_at_load_and_leaves_empty_caches(loaded):
    counter = ForwardCounter(loaded.model)
    try:
        engine = Engine(loaded)
    finally:
        counter.remove()
    try:
        assert counter.calls >= 2  # a short generation in each lane
        lanes = engine.decoder.lanes
        assert set(lanes) == {"interactive", "background"}
        assert all(not c.target.tokens for c in lanes.values())
        assert engine.decoder.costs.draft_s is None  # cold timings are not kept
    finally:
        engine.close()


def test_threads_default_to_physical_cores():
    from lsp_llm.engine.load.loading import apply_threads, physical_cores

    before = torch.get_num_threads()
    try:
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
        cores = physical_cores()
        assert 1 <= cores <= (os.cpu_count() or 1)
        assert apply_threads(0) == cores == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_close_stops_a_running_chat_and_answers_later_requests(loaded):
    ids = prompts(loaded.tokenizer, 1)[0]
    engine = Engine(loaded)
    started = threading.Event()
    ended: list = []

    def sink(ev):
        if isinstance(ev, Done):
            ended.append(ev)
        else:
            started.set()

    chat = engine.worker.submit(
        GenerationRequest(ids, 100_000, speculation=Speculation("off"), lane="background"), sink
    )
    assert started.wait(30)
    engine.close()
    assert chat.finished.is_set() and ended[0].reason == "cancelled"  # not run to its end
    late: list = []
    job = engine.worker.submit(GenerationRequest(ids, 4), late.append)
    assert job.finished.is_set() and isinstance(late[0], Done) and late[0].reason == "cancelled"


def test_a_requests_acceptance_starts_from_the_engines_recent_history(loaded, twin_draft):
    """`auto` judges a draft from the start of a request by how it did lately: the twin
    is always accepted, the tiny random draft less, and the next request's prior says so."""
    from lsp_llm.engine.decoding import _Run

    rates = {}
    for name, draft in (("random", loaded.draft_model), ("twin", twin_draft)):
        dec = Decoder(loaded.model, loaded.tokenizer, draft)
        for ids in prompts(loaded.tokenizer, 4):
            run(dec, GenerationRequest(ids, 24, speculation=Speculation("draft", 4)))
        rates[name] = dec.draft_history.rate
        fresh = _Run(dec, GenerationRequest((1, 2)), threading.Event(), print, 0.0, None)
        assert fresh.acceptance.prior == rates[name]
        assert fresh.lookup_acceptance.prior == dec.lookup_history.rate == 0.6  # never tried
    assert rates["twin"] > 0.9 and rates["random"] < rates["twin"] - 0.1, rates


def test_auto_drafts_with_the_model_only_where_its_cache_is_close_to_the_text(
    loaded, twin_draft, monkeypatch
):
    """A draft whose cache has not read the text would first have to prefill it: `auto`
    leaves the model out then (prompt lookup still drafts), `draft` catches up; and a
    catch-up is reported apart from the drafting steps, so it does not make drafting look
    dear to `auto` afterwards. (Prompt lookup finds nothing here, so `auto`'s choice is
    between the model and no draft, and the pass costs are left unmeasured before each
    `auto` request, so they do not decide either.)"""
    from lsp_llm.engine.drafting import CATCH_UP, ForwardCosts

    monkeypatch.setattr("lsp_llm.engine.decoding.prompt_lookup", lambda tokens, k: [])
    dec = Decoder(loaded.model, loaded.tokenizer, twin_draft)
    first = prompts(loaded.tokenizer, 40)
    long_text = tuple(t for p in first for t in p)[: CATCH_UP * 2]
    assert len(long_text) > CATCH_UP + 16
    draft = dec.lane("interactive").draft
    assert draft is not None and draft.lag(long_text) == len(long_text)
    dec.costs = ForwardCosts()
    cold, _ = run(dec, GenerationRequest(long_text, 8, speculation=Speculation("auto", 4)))
    assert cold.stats.draft_forwards == 0 and cold.stats.drafted_tokens == 0
    caught, _ = run(dec, GenerationRequest(long_text, 8, speculation=Speculation("draft", 4)))
    assert caught.stats.draft_forwards > 0 and cold.text == caught.text
    assert draft.last_feed[0] <= 2  # after its catch-up, each step feeds a token or two
    follow = long_text + tuple(caught.token_ids)
    assert draft.lag(follow) <= CATCH_UP
    dec.costs = ForwardCosts()
    warm, _ = run(dec, GenerationRequest(follow, 8, speculation=Speculation("auto", 4)))
    assert warm.stats.draft_forwards > 0 and warm.stats.accepted_draft_tokens > 0
