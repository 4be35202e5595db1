"""The decoding loop over the model's forward pass and KV cache.

Written here rather than through `generate()` because the engine must check a cancel flag
before every forward pass (draft passes included), apply stop rules on every accepted
token of a speculative block, and keep the KV cache between requests (facts.md lists
where `generate()` falls short). Greedy output is the same with and without speculation:
each position of a verified block is chosen exactly as plain decoding would choose it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from lsp_llm.generation.tokens import Tokenizer

from lsp_llm.engine.cpu.packedweights import CpuWeights
from lsp_llm.engine.detok import IncrementalDetokenizer
from lsp_llm.engine.drafting import (
    CATCH_UP,
    Acceptance,
    AcceptanceHistory,
    DraftLength,
    DraftModel,
    ForwardCosts,
    drafting_cost,
    prompt_lookup,
)
from lsp_llm.engine.healing import TokenTexts, constrain
from lsp_llm.engine.kvcache import KVCache, Logits, cache_for
from lsp_llm.engine.load.draftvocab import DraftVocab
from lsp_llm.generation.stopping import StopChecker
from lsp_llm.generation.types import (
    DecodeStats,
    Done,
    Event,
    FinishReason,
    GenerationRequest,
    Lane,
    Sampling,
    Speculation,
    TextDelta,
    finished,
)

WARM_UP_TEXT = "def area(width, height):\n    return width * height\n\n\ndef perimeter(w, h):\n"
logger = logging.getLogger(__name__)

PREFILL_CHUNK = {"interactive": 512, "background": 128}
"""Prompt tokens per forward pass while prefilling, per lane: the cancel granularity of a
prefill, and for a chat also how long a completion that comes during its prefill waits."""


class Cancelled(Exception):
    pass


def pick_tokens(
    logits: Logits, sampling: Sampling, generator: torch.Generator | None, draft: list[int]
) -> list[int]:
    """Choose the token at each verified position: argmax, or a sample from the tempered,
    top-p-filtered distribution. Stops at the first position that disagrees with the draft,
    since later positions are conditioned on a rejected token (and their logits, where the
    cache computes them lazily, are never computed)."""
    if sampling.greedy and isinstance(logits, torch.Tensor):
        # every row at once: one read back from the device, not one per row
        everything = [int(t) for t in torch.argmax(logits, dim=-1).tolist()]
        return everything[: accepted_length(draft, everything) + 1]
    picked: list[int] = []
    for i in range(len(logits)):
        if sampling.greedy:
            token = int(torch.argmax(logits[i]))
        else:
            token = _sample(logits[i], sampling, generator)
        picked.append(token)
        if i >= len(draft) or token != draft[i]:
            break
    return picked


def _sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator | None) -> int:
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if sampling.top_p < 1.0:
        sorted_p, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_p, dim=-1) - sorted_p > sampling.top_p
        sorted_p[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
    return int(torch.multinomial(probs, 1, generator=generator))


def accepted_length(draft: list[int], picked: list[int]) -> int:
    a = 0
    while a < len(draft) and a < len(picked) and draft[a] == picked[a]:
        a += 1
    return a


class _Run:
    """The state of one request while it decodes."""

    def __init__(
        self,
        decoder: Decoder,
        req: GenerationRequest,
        cancelled: threading.Event,
        emit: Callable[[Event], None],
        t_submit: float,
        pause: Callable[[], None] | None,
    ) -> None:
        self.req = req
        self.cancelled = cancelled
        self.emit = emit
        self.pause = pause
        lane = decoder.lane(req.lane)
        self.target = lane.target
        self.draft = lane.draft
        self.t_submit = t_submit
        self.t_start = time.perf_counter()
        self.t_first: float | None = None
        self.stats = DecodeStats()
        self.tokens = list(req.prompt_ids)
        self.generated = 0
        self.detok = IncrementalDetokenizer(decoder.tokenizer)
        self.checker = StopChecker(req.stop)
        self.emitted = 0
        self.safe_upto = 0
        """How much of the text the stop checker last said is final."""
        self.final_text: str | None = None
        self.reason: FinishReason = "stop"
        self.acceptance = Acceptance(decoder.draft_history.rate)
        """How often this request's draft-model tokens were accepted (auto mode's guide),
        from the engine's recent history of them."""
        self.lookup_acceptance = Acceptance(decoder.lookup_history.rate)
        """The same for prompt lookup's drafts."""
        self.heal = req.heal
        self.no_space_after = req.heal.endswith((" ", "\t"))
        """The cut ended after a space or indentation: no more whitespace may follow it."""
        self.heal_tokens = 0
        """Tokens that spelled (part of) `heal`: they do not count against the budget."""

    @property
    def healing(self) -> bool:
        """The generated text has not yet spelled all of `req.heal`."""
        return len(self.detok.text) < len(self.heal)

    @property
    def constrained(self) -> bool:
        """The next token is constrained: it spells (more of) `req.heal`, or, when that
        ends with a space or tab (the cursor after indentation or `= `), it is the first
        token after it, which must not start with more whitespace."""
        if self.healing:
            return True
        return self.no_space_after and len(self.detok.text) == len(self.heal)

    @property
    def visible(self) -> str:
        """The generated text past the healed part: what the stop rules and the user see."""
        return self.detok.text[len(self.heal) :]

    def between_steps(self) -> None:
        """A point where the caches are consistent: let waiting, more urgent requests run
        (they use their own lane's caches), then go on unless cancelled meanwhile."""
        if self.pause is not None:
            self.pause()
        if self.cancelled.is_set():
            raise Cancelled

    def before_forward(self, draft: bool = False) -> None:
        if self.cancelled.is_set():
            raise Cancelled
        if draft:
            self.stats.draft_forwards += 1
        else:
            self.stats.target_forwards += 1

    def after_forward(self) -> None:
        if self.cancelled.is_set():
            self.stats.forwards_after_cancel += 1

    def accept(self, token: int) -> bool:
        """Add one token; apply every stop rule; return True when the generation ends."""
        if token in self.req.stop.stop_token_ids:
            self.final_text = self.checker.finish(self.visible)
            self.reason = "stop"
            return True
        self.tokens.append(token)
        self.generated += 1
        if self.healing:
            self.heal_tokens += 1
        if self.detok.add(token) and not self.healing:
            verdict = self.checker.feed(self.visible)
            self.safe_upto = verdict.emit_upto
            if verdict.stop_at is not None:
                self.final_text = self.visible[: verdict.stop_at]
                self.reason = "stop"
                return True
        if self.generated - self.heal_tokens >= self.req.max_new_tokens:
            self.final_text = self.checker.finish(self.visible)
            self.reason = "length"
            return True
        return False

    def flush(self) -> None:
        """Emit the text that is final so far."""
        text = self.final_text if self.final_text is not None else self.visible
        upto = len(text) if self.final_text is not None else self.safe_upto
        if upto > self.emitted:
            if self.t_first is None:
                self.t_first = time.perf_counter()
            self.emit(TextDelta(text[self.emitted : upto]))
            self.emitted = upto

    def done(self, reason: FinishReason) -> Done:
        text = self.final_text if self.final_text is not None else self.visible[: self.emitted]
        # The tokens that spelled the healed text again belong to the prompt's text.
        return finished(
            reason,
            text,
            prompt_tokens=len(self.req.prompt_ids) + self.heal_tokens,
            completion_tokens=self.generated - self.heal_tokens,
            submitted=self.t_submit,
            started=self.t_start,
            first=self.t_first,
            decoded=self.generated,
            stats=self.stats,
            token_ids=tuple(self.tokens[len(self.req.prompt_ids) :]),
        )


@dataclass
class LaneCaches:
    """The caches one lane decodes with: the target's and, with a draft model, its own."""

    target: KVCache
    draft: DraftModel | None


class Decoder:
    """Owns the target (and optional draft) model's caches, one set per lane
    (`GenerationRequest.lane`); used from one thread only."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: Tokenizer,
        draft_model: PreTrainedModel | None = None,
        allow_draft_in_auto: bool = True,
        weights: CpuWeights = "float",
        draft_vocab: DraftVocab | None = None,
    ) -> None:
        """`weights`: on a CPU, the format of the weights that passes feeding few tokens
        read (`packedweights.py`); both models use it. `draft_vocab`: the draft's own smaller
        vocabulary (`draftvocab.py`), if it has one."""
        self.model = model
        self.tokenizer = tokenizer
        vocab = int(model.get_output_embeddings().out_features)
        draft = (
            DraftModel(draft_model, vocab, weights=weights, vocab=draft_vocab)
            if draft_model is not None
            else None
        )
        first = LaneCaches(cache_for(model, weights), draft)
        self.lanes: dict[Lane, LaneCaches] = {"interactive": first}
        self.allow_draft_in_auto = allow_draft_in_auto
        self.costs = ForwardCosts()
        self.draft_history = AcceptanceHistory()
        self.lookup_history = AcceptanceHistory()
        """Acceptance of each kind of draft over recent requests (`AcceptanceHistory`)."""
        self.token_texts = TokenTexts(tokenizer, vocab)
        """For token healing; built here, at load, so no request pays for it."""

    def compile_decode_step(self) -> str | None:
        """Compile the target's one-token passes (`compiled.py`) now, on a scratch cache
        (the first time on a small CPU: a minute); a warning instead when that cannot be
        done here or fails."""
        from lsp_llm.engine.cachedir import cache_root
        from lsp_llm.engine.cpu.compiled import cxx_compiler, keep_in_cache
        from lsp_llm.engine.leanforward import LeanCache

        target = self.lanes["interactive"].target
        if not isinstance(target, LeanCache):
            return "compile: this model runs transformers' own forward; decoding eagerly"
        if target.native_layers is not None:
            # docs/engine-decisions.md: the native layers beat a compiled step
            return (
                "compile: not used: lsp-llm's native kernels run this model's layers faster "
                "than a compiled step"
            )
        if cxx_compiler() is None:
            return "compile: no C++ compiler (g++, clang++ or $CXX) found; decoding eagerly"
        keep_in_cache(cache_root())
        target.compile_decode_step()
        scratch = target.fork()  # its own key/value buffers, dropped after
        with torch.inference_mode():
            scratch.forward([0, 0])
            scratch.forward([0])  # a one-token pass: compiles
        failed = target.step.failed if target.step is not None else None
        return f"compile: {failed}; decoding eagerly" if failed else None

    def warm_up(self) -> None:
        """Run a short generation in each lane, then empty the caches: one-time costs
        (allocating the KV caches, the math libraries' first calls, the draft model's
        first pass) are paid at load, not by the user's first request."""
        ids = tuple(self.tokenizer.encode(WARM_UP_TEXT, add_special_tokens=False))
        if not ids:
            return
        for lane in ("interactive", "background"):
            request = GenerationRequest(ids, 4, speculation=Speculation("draft"), lane=lane)
            try:
                self.run(request, threading.Event(), lambda event: None)
            except Exception:  # the requests that hit the same fault will report it
                logger.warning("warm-up generation failed", exc_info=True)
                break
        for caches in self.lanes.values():
            caches.target.reset()
            if caches.draft is not None:
                caches.draft.cache.reset()
        self.costs = ForwardCosts()  # cold passes would mislead `auto`
        self.draft_history = AcceptanceHistory()  # and so would the warm-up's text
        self.lookup_history = AcceptanceHistory()

    def lane(self, name: Lane) -> LaneCaches:
        """The caches of lane `name`, made (empty, sharing the weights) on first use."""
        caches = self.lanes.get(name)
        if caches is None:
            first = self.lanes["interactive"]
            caches = LaneCaches(
                first.target.fork(), first.draft.fork() if first.draft is not None else None
            )
            self.lanes[name] = caches
        return caches

    def run(
        self,
        req: GenerationRequest,
        cancelled: threading.Event,
        emit: Callable[[Event], None],
        t_submit: float | None = None,
        pause: Callable[[], None] | None = None,
    ) -> Done:
        """Decode `req`. `pause`, when given, is called between forward passes: it may run
        other requests (of another lane) on this thread before this one goes on."""
        run = _Run(
            self,
            req,
            cancelled,
            emit,
            t_submit if t_submit is not None else time.perf_counter(),
            pause,
        )
        try:
            with torch.inference_mode():
                self._decode(run)
        except Cancelled:
            return run.done("cancelled")
        finally:
            self.draft_history.record(run.acceptance)
            self.lookup_history.record(run.lookup_acceptance)
        run.flush()
        return run.done(run.reason)

    def _prefill(self, run: _Run) -> torch.Tensor:
        prompt = run.tokens
        if not run.req.reuse_prefix:
            run.target.reset()
            if run.draft is not None:
                run.draft.cache.reset()
        kept = run.target.reuse(prompt)
        run.stats.reused_prefix_tokens = kept
        pos = kept
        logits: torch.Tensor | None = None
        while pos < len(prompt):
            chunk = prompt[pos : pos + PREFILL_CHUNK[run.req.lane]]
            if pos > kept:
                run.between_steps()
            run.before_forward()
            logits = run.target.forward(chunk)
            run.after_forward()
            run.stats.tokens_fed += len(chunk)
            run.stats.prefill_forwards += 1
            pos += len(chunk)
        assert logits is not None
        return logits

    def _healed(self, run: _Run, logits: Logits) -> Logits:
        """The last position's logits, restricted while the generation must still spell
        the healed text; `logits` as they are otherwise."""
        if not run.constrained:
            return logits
        remaining = run.heal[len(run.detok.text) :]
        mask = self.token_texts.allowed(remaining, run.no_space_after)
        return constrain(logits[len(logits) - 1], mask)

    def _propose(self, run: _Run, length: DraftLength) -> tuple[list[int], bool]:
        """The next draft and whether the draft model made it. `auto` takes prompt lookup's
        free proposal when there is one, else the draft model's, each as long as the
        measured costs of the passes and this request's acceptance of that kind of draft
        say it yields more tokens per second than decoding one token per pass."""
        mode = run.req.speculation.mode
        if mode == "off":
            return [], False
        k = length.value
        if mode in ("promptLookup", "auto"):
            lookup = k
            if mode == "auto":
                lookup = self.costs.best_draft_length(run.lookup_acceptance.rate, k, free=True)
                if not lookup:
                    run.lookup_acceptance.relax()
            proposal = prompt_lookup(run.tokens, lookup) if lookup else []
            if proposal or mode == "promptLookup":
                return proposal, False
        if run.draft is None or (mode == "auto" and not self.allow_draft_in_auto):
            return [], False
        if mode == "auto":
            k = self.costs.best_draft_length(run.acceptance.rate, k)
            if k == 0 or run.draft.lag(run.tokens) > CATCH_UP:
                return [], False
        passes = run.stats.draft_forwards
        t0 = time.perf_counter()
        proposal = run.draft.propose(run.tokens, k, lambda: run.before_forward(draft=True))
        spent = time.perf_counter() - t0, run.stats.draft_forwards - passes
        self.costs.record_draft(*drafting_cost(*spent, run.draft.last_feed))
        return proposal, True

    def _decode(self, run: _Run) -> None:
        req = run.req
        if not req.prompt_ids:
            raise ValueError("empty prompt")
        if req.max_new_tokens <= 0:
            run.reason = "length"
            run.final_text = ""
            return
        generator = None
        if not req.sampling.greedy:
            generator = torch.Generator(device=run.target.device)
            generator.manual_seed(
                req.sampling.seed if req.sampling.seed is not None else int(time.time_ns() % 2**63)
            )
        logits = self._prefill(run)
        next_token = pick_tokens(self._healed(run, logits), req.sampling, generator, [])[0]
        length = DraftLength(req.speculation.num_tokens)
        while True:
            if run.accept(next_token):
                return
            run.flush()
            run.between_steps()
            if run.constrained:  # one constrained token at a time, no drafting
                run.before_forward()
                rows = run.target.forward_rows([run.tokens[-1]], 1)
                run.after_forward()
                run.stats.tokens_fed += 1
                next_token = pick_tokens(self._healed(run, rows), req.sampling, generator, [])[0]
                continue
            draft, from_model = self._propose(run, length)
            run.before_forward()
            t0 = time.perf_counter()
            rows = run.target.forward_rows([run.tokens[-1], *draft], len(draft) + 1)
            picked = pick_tokens(rows, req.sampling, generator, draft)
            self.costs.record_target(time.perf_counter() - t0, len(draft) + 1)
            run.after_forward()
            run.stats.tokens_fed += len(draft) + 1
            a = accepted_length(draft, picked)
            if draft:
                (run.acceptance if from_model else run.lookup_acceptance).update(len(draft), a)
            # The cache now holds the drafted tokens too; keep only the accepted ones.
            run.target.crop(len(run.tokens) + a)
            run.stats.drafted_tokens += len(draft)
            run.stats.accepted_draft_tokens += a
            length.update(len(draft), a)
            for token in draft[:a]:
                if run.accept(token):
                    return
            next_token = picked[a]
