"""One greedy generation per call, timed the same way for every contender: our engine in a
speculation mode, transformers `generate()` (plain, assisted, prompt lookup) and llama.cpp.

Every run is cold (no KV cache carried over from the previous prompt) and has a fixed
length: end tokens do not stop it, so every contender produces the same number of tokens
and the token ids can be compared one for one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from lsp_llm.bench.cases import Case
from lsp_llm.generation.backend import Backend
from lsp_llm.generation.types import GenerationRequest, Speculation, SpeculationMode, StopRules


@dataclass(frozen=True)
class Sample:
    tokens: tuple[int, ...]
    ttft_s: float
    """From the call to the first generated token."""
    total_s: float
    target_forwards: int | None = None
    """Target passes that produced tokens: the prefill's last pass and every decode pass."""
    drafted: int | None = None
    accepted: int | None = None


Runner = Callable[[Case], Sample]


def engine_runner(engine: Backend, mode: SpeculationMode, num_tokens: int) -> Runner:
    """Our engine (through its inference thread, as the server uses it)."""

    def run(case: Case) -> Sample:
        done = engine.generate(
            GenerationRequest(
                case.prompt_ids,
                max_new_tokens=case.max_new_tokens,
                stop=StopRules(),
                speculation=Speculation(mode, num_tokens),
                reuse_prefix=False,
            )
        )
        t, s = done.timings, done.stats
        return Sample(
            tokens=done.token_ids,
            ttft_s=(t.first_token_ms if t.first_token_ms is not None else t.total_ms) / 1000,
            total_s=t.total_ms / 1000,
            target_forwards=s.target_forwards - s.prefill_forwards + 1,
            drafted=s.drafted_tokens if mode != "off" else None,
            accepted=s.accepted_draft_tokens if mode != "off" else None,
        )

    return run


class _FirstToken:
    """A `generate()` streamer that notes when the first new token arrives (the first
    `put` is the prompt)."""

    def __init__(self) -> None:
        self.puts = 0
        self.t_first: float | None = None

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2:
            self.t_first = time.perf_counter()

    def end(self) -> None:
        pass


@contextlib.contextmanager
def _no_end_token(*models: Any) -> Iterator[None]:
    """`generate()` fills an unset `eos_token_id` from the model's own generation config,
    so `eos_token_id=None` alone still stops at the end token: clear it there too."""
    configs = [m.generation_config for m in models if m is not None]
    saved = [c.eos_token_id for c in configs]
    for c in configs:
        c.eos_token_id = None
    try:
        yield
    finally:
        for c, value in zip(configs, saved, strict=True):
            c.eos_token_id = value


@contextlib.contextmanager
def _count_calls(model: Any) -> Iterator[list[int]]:
    calls = [0]
    handle = model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        yield calls
    finally:
        handle.remove()


@contextlib.contextmanager
def _count_candidates() -> Iterator[list[int]]:
    """Count the tokens transformers' candidate generators propose."""
    from transformers.generation import candidate_generator as cg

    drafted = [0]
    classes: tuple[Any, ...] = (cg.AssistedCandidateGenerator, cg.PromptLookupCandidateGenerator)
    originals = [cls.get_candidates for cls in classes]

    def wrap(original: Any) -> Any:
        def get_candidates(self: Any, input_ids: Any, **kwargs: Any) -> Any:
            out = original(self, input_ids, **kwargs)
            drafted[0] += int(out[0].shape[-1] - input_ids.shape[-1])
            return out

        return get_candidates

    for cls, original in zip(classes, originals, strict=True):
        cls.get_candidates = wrap(original)
    try:
        yield drafted
    finally:
        for cls, original in zip(classes, originals, strict=True):
            cls.get_candidates = original


def hf_runner(model: Any, draft_model: Any | None, how: str, num_tokens: int) -> Runner:
    """transformers `generate()`: `how` is "plain", "assisted" (the draft model, with
    transformers' own draft-length schedule) or "promptLookup"."""
    from transformers import GenerationConfig

    device = next(model.parameters()).device

    def run(case: Case) -> Sample:
        extra: dict[str, Any] = {}
        if how == "assisted":
            extra["assistant_model"] = draft_model
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=case.max_new_tokens,
            eos_token_id=None,
            pad_token_id=0,
            prompt_lookup_num_tokens=num_tokens if how == "promptLookup" else None,
        )
        ids = torch.tensor([case.prompt_ids], dtype=torch.long, device=device)
        streamer = _FirstToken()
        with (
            _no_end_token(model, extra.get("assistant_model")),
            _count_calls(model) as calls,
            _count_candidates() as drafted,
            torch.inference_mode(),
        ):
            t0 = time.perf_counter()
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                streamer=streamer,
                **extra,
            )
            total = time.perf_counter() - t0
        tokens = tuple(int(t) for t in out[0, ids.shape[1] :].tolist())
        speculative = how != "plain"
        return Sample(
            tokens=tokens,
            ttft_s=(streamer.t_first or time.perf_counter()) - t0,
            total_s=total,
            target_forwards=calls[0],
            drafted=drafted[0] if speculative else None,
            # every verifying pass yields its accepted tokens plus one of its own
            accepted=max(0, len(tokens) - calls[0]) if speculative else None,
        )

    return run


LLAMA_GREEDY: dict[str, Any] = {
    "top_k": 1,
    "top_p": 1.0,
    "min_p": 0.0,
    "temp": 0.0,
    "repeat_penalty": 1.0,
}
"""llama-cpp-python `generate()` arguments for plain greedy decoding."""


def open_llama(gguf_path: str, threads: int, n_ctx: int, **extra: Any) -> Any:
    """A `llama_cpp.Llama` on `gguf_path` with `threads` for prompts and decoding."""
    from llama_cpp import Llama

    return Llama(
        model_path=gguf_path,
        n_ctx=n_ctx,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
        **extra,
    )


def llama_cpp_runner(gguf_path: str, threads: int, n_ctx: int, prompt_lookup: int = 0) -> Runner:
    """llama.cpp through llama-cpp-python, greedy; `prompt_lookup` > 0 uses its
    prompt-lookup speculative decoding with that many drafted tokens."""
    extra: dict[str, Any] = {}
    if prompt_lookup:
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        extra["draft_model"] = LlamaPromptLookupDecoding(num_pred_tokens=prompt_lookup)
        # it keeps every position's logits then, but sizes that table by `logits_all`
        # (n_batch rows otherwise): a prompt past 512 tokens would not fit
        extra["logits_all"] = True
    llm = open_llama(gguf_path, threads, n_ctx, **extra)

    def run(case: Case) -> Sample:
        llm.reset()
        tokens: list[int] = []
        t_first = None
        t0 = time.perf_counter()
        for token in llm.generate(list(case.prompt_ids), reset=True, **LLAMA_GREEDY):
            if t_first is None:
                t_first = time.perf_counter()
            tokens.append(int(token))
            if len(tokens) >= case.max_new_tokens:
                break
        total = time.perf_counter() - t0
        return Sample(
            tokens=tuple(tokens),
            ttft_s=(t_first or time.perf_counter()) - t0,
            total_s=total,
            target_forwards=len(tokens) if not prompt_lookup else None,
        )

    return run
