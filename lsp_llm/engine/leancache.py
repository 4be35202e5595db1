"""A lean forward pass with its own KV cache, for Qwen2- and Llama-architecture models.

transformers' forward does a lot per call that a one-sequence decoder does not need: it
builds attention masks, recomputes the rotary tables, dispatches through attention
interfaces and output classes, and grows its cache by concatenation. For a small model on
a CPU that Python work costs more than the matrix products. This module runs the same
layers (the model's own modules and weights, so quantized linears work too) with:

- keys and values written into preallocated tensors that grow by doubling;
- rotary cos/sin tables for positions computed once, the same way transformers does;
- no mask at all for one new token, a causal mask only when several are fed after a cache;
- the final norm and output head applied only to the positions whose logits are wanted.

The math is the model's: greedy output matches transformers' `generate()` (the benchmark
checks it token for token). Models it does not cover keep transformers' forward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

SUPPORTED = frozenset({"qwen2", "llama"})
INITIAL_CAPACITY = 512


def lean_supported(model: Any) -> bool:
    """Whether `model` is a plain single-device Qwen2/Llama decoder this module can run."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "model_type", None) not in SUPPORTED:
        return False
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        return False
    if getattr(config, "use_sliding_window", False) or any(
        t != "full_attention" for t in getattr(config, "layer_types", None) or []
    ):
        return False
    device_map = getattr(model, "hf_device_map", None)
    if device_map and len({str(d) for d in device_map.values()}) > 1:
        return False  # split or offloaded: accelerate's hooks on the layers must run
    inner = getattr(model, "model", None)
    return inner is not None and hasattr(inner, "layers") and hasattr(model, "lm_head")


class LeanCache:
    """Same interface as `PrefixCache`: the tokens the cache holds, reuse, crop, forward."""

    def __init__(self, model: Any) -> None:
        self.model = model
        inner = model.model
        self.layers = list(inner.layers)
        self.embed = inner.embed_tokens
        self.norm = inner.norm
        self.head = model.lm_head
        config = model.config
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(
            getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        )
        self.scaling = self.head_dim**-0.5
        weight = self.embed.weight
        self.device = weight.device
        self.dtype = weight.dtype if weight.dtype.is_floating_point else torch.float32
        rotary = inner.rotary_emb
        self.inv_freq = rotary.inv_freq.to(device=self.device, dtype=torch.float)
        self.attention_scaling = float(getattr(rotary, "attention_scaling", 1.0))
        self.tokens: list[int] = []
        self.capacity = 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.cos = torch.empty(0)
        self.sin = torch.empty(0)

    # cache management -------------------------------------------------------------------
    def reuse(self, tokens: Sequence[int]) -> int:
        from lsp_llm.engine.kvcache import common_prefix_length

        keep = min(common_prefix_length(self.tokens, tokens), len(tokens) - 1)
        if keep <= 0:
            self.reset()
            return 0
        self.crop(keep)
        return keep

    def reset(self) -> None:
        self.tokens = []

    def crop(self, length: int) -> None:
        del self.tokens[length:]

    def _ensure(self, length: int) -> None:
        if length <= self.capacity:
            return
        capacity = max(INITIAL_CAPACITY, self.capacity)
        while capacity < length:
            capacity *= 2
        shape = (1, self.kv_heads, capacity, self.head_dim)
        used = len(self.tokens)
        for store in (self.keys, self.values):
            for i in range(len(self.layers)):
                grown = torch.empty(shape, device=self.device, dtype=self.dtype)
                if i < len(store):
                    grown[:, :, :used] = store[i][:, :, :used]
                    store[i] = grown
                else:
                    store.append(grown)
        # the rotary tables exactly as transformers computes them for these positions
        positions = torch.arange(capacity, device=self.device).float()
        freqs = positions[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.cos = (emb.cos() * self.attention_scaling).to(self.dtype)
        self.sin = (emb.sin() * self.attention_scaling).to(self.dtype)
        self.capacity = capacity

    # the forward pass -------------------------------------------------------------------
    def forward(self, new_ids: Sequence[int], keep_logits: int = 1) -> torch.Tensor:
        """Feed `new_ids` after the cached tokens; return logits of the last `keep_logits`
        positions as a [keep_logits, vocab] tensor."""
        past = len(self.tokens)
        n = len(new_ids)
        self._ensure(past + n)
        try:
            logits = self._forward(list(new_ids), past, keep_logits)
        except BaseException:
            self.tokens = []  # a half-written cache cannot be trusted
            raise
        self.tokens.extend(new_ids)
        return logits

    def _forward(self, ids: list[int], past: int, keep_logits: int) -> torch.Tensor:
        n = len(ids)
        end = past + n
        x = self.embed(torch.tensor([ids], dtype=torch.long, device=self.device))
        cos = self.cos[past:end][None, None]
        sin = self.sin[past:end][None, None]
        mask = None
        causal = False
        if n > 1:
            if past == 0:
                causal = True
            else:
                rows = torch.arange(past, end, device=self.device)[:, None]
                cols = torch.arange(end, device=self.device)[None, :]
                mask = cols <= rows
        gqa = self.heads != self.kv_heads
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            h = layer.input_layernorm(x)
            q = attn.q_proj(h).view(1, n, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(1, n, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(1, n, self.kv_heads, self.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            keys, values = self.keys[i], self.values[i]
            keys[:, :, past:end] = k
            values[:, :, past:end] = v
            out = F.scaled_dot_product_attention(
                q,
                keys[:, :, :end],
                values[:, :, :end],
                attn_mask=mask,
                is_causal=causal,
                scale=self.scaling,
                enable_gqa=gqa,
            )
            x = x + attn.o_proj(out.transpose(1, 2).reshape(1, n, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        last = self.norm(x[:, -keep_logits:])
        return self.head(last)[0]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
