"""A model's KV cache together with the tokens it holds, reused across requests.

`reuse(tokens)` crops the cache to the longest common prefix with the next prompt, so a
request on a slightly edited document feeds only the tokens after the edit. `cache_for`
picks the lean forward (leanforward.py) for the models it covers, this one for the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from transformers import DynamicCache

from lsp_llm.engine.cpu.packedweights import CpuWeights


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: DynamicCache | None = None
        self.tokens: list[int] = []
        device = getattr(model, "device", None)
        self.device = device if device is not None else torch.device("cpu")

    def fork(self) -> PrefixCache:
        """An empty cache over the same model."""
        return PrefixCache(self.model)

    def reuse(self, tokens: Sequence[int]) -> int:
        """Keep the cached prefix shared with `tokens` (leaving at least one token to feed,
        so the next forward yields logits); return how many tokens are kept."""
        keep = min(common_prefix_length(self.tokens, tokens), len(tokens) - 1)
        if self.cache is None or keep <= 0:
            self.reset()
            return 0
        self.crop(keep)
        return keep

    def reset(self) -> None:
        self.cache = DynamicCache(config=self.model.config)
        self.tokens = []

    def crop(self, length: int) -> None:
        extra = len(self.tokens) - length
        if extra > 0:
            assert self.cache is not None
            self.cache.crop(-extra)
            del self.tokens[length:]

    def forward(self, new_ids: Sequence[int], keep_logits: int = 1) -> torch.Tensor:
        """Feed `new_ids` after the cached tokens; return logits of the last `keep_logits`
        positions as a [keep_logits, vocab] tensor."""
        if self.cache is None:
            self.reset()
        ids = torch.tensor([list(new_ids)], dtype=torch.long, device=self.device)
        try:
            out = self.model(
                input_ids=ids,
                past_key_values=self.cache,
                use_cache=True,
                logits_to_keep=keep_logits,
            )
        except BaseException:
            self.cache = None  # a half-updated cache cannot be trusted
            self.tokens = []
            raise
        self.tokens.extend(new_ids)
        return out.logits[0, -keep_logits:]

    def forward_rows(self, new_ids: Sequence[int], rows: int) -> torch.Tensor:
        """`forward`, for the decoder's verify pass (transformers computes every row)."""
        return self.forward(new_ids, rows)


class KVCache(Protocol):
    """What the decoder needs of a cache: the tokens it holds and a forward over new ones."""

    tokens: list[int]
    device: torch.device

    def fork(self) -> KVCache:
        """An empty cache of its own over the same model and weights (another lane)."""
        ...

    def reuse(self, tokens: Sequence[int]) -> int: ...
    def reset(self) -> None: ...
    def crop(self, length: int) -> None: ...
    def forward(self, new_ids: Sequence[int], keep_logits: int = 1) -> torch.Tensor: ...
    def forward_rows(self, new_ids: Sequence[int], rows: int) -> Logits:
        """Logits of the last `rows` positions, indexable by position; the lean cache
        computes each position's only when it is read."""
        ...


class Logits(Protocol):
    """[positions, vocab] logits: a tensor, or rows computed on demand."""

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> torch.Tensor: ...


def cache_for(model: Any, weights: CpuWeights = "float") -> KVCache:
    """The cache (and forward pass) to decode `model` with: the lean one where it applies
    (which, on a CPU, reads `weights`: float, or packed int8/int4 copies)."""
    from lsp_llm.engine.leanforward import LeanCache, lean_supported

    return LeanCache(model, weights) if lean_supported(model) else PrefixCache(model)
