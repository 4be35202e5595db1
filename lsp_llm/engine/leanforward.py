"""A lean forward pass with its own KV cache, for Qwen2- and Llama-architecture models.

transformers' forward does a lot per call that a one-sequence decoder does not need: it
builds attention masks, recomputes the rotary tables, dispatches through attention
interfaces and output classes, and grows its cache by concatenation. For a small model on
a CPU that Python work costs more than the matrix products. This module runs the same
layers (the model's own modules and weights, so quantized linears work too) with:

- keys and values written into preallocated tensors that grow by doubling;
- rotary cos/sin tables for positions computed once, the same way transformers does;
- no mask at all for one new token, a causal mask only when several are fed after a cache;
- the final norm and output head applied only to the positions whose logits are wanted;
- one matrix product where the model has several over the same input (q/k/v, gate/up):
  the model's own weights become views into one fused weight, so nothing is copied and
  transformers' forward computes exactly what it did;
- on a CPU, a small output head also kept transposed, the layout the BLAS reads fastest
  when a pass feeds one or a few tokens (the head is the largest matrix of a small model);
- on a CPU, optionally, int8 or int4 copies of the weights for passes that feed few tokens
  (`packedweights.py`; the `quantization` setting);
- on a CPU with int4 weights and the project's kernels, every layer of a pass that feeds
  a few tokens (decoding, verification, a keystroke's change) in one native call
  (`nativelayers.py`);
- on a CPU, optionally, a decoding step's layers compiled into one graph by torch.compile
  (`compiled.py`; the `compile` setting).

The math is the model's: greedy output matches transformers' `generate()` (the benchmark
checks it token for token). Models it does not cover keep transformers' forward.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from lsp_llm.engine import nativelayers
from lsp_llm.engine.cpu import native as native_kernels
from lsp_llm.engine.cpu.compiled import CompiledStep
from lsp_llm.engine.cpu.packedweights import (
    CpuWeights,
    HeadProjection,
    Projection,
    forget_packed,
    kernels_available,
    packed_for,
)

SUPPORTED = frozenset({"qwen2", "llama"})
INITIAL_CAPACITY = 512
TRANSPOSED_HEAD_LIMIT = 64 * 2**20
"""Bytes up to which a CPU model's output head gets a transposed copy (a small model's)."""


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

    def __init__(self, model: Any, weights: CpuWeights = "float", native: bool = True) -> None:
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
        self.gqa = self.heads != self.kv_heads
        weight = (
            self.norm.weight
        )  # every model has a float one (a GGUF model's embedding is blocks)
        self.device = weight.device
        self.dtype = weight.dtype if weight.dtype.is_floating_point else torch.float32
        if self.device.type != "cpu" or not kernels_available(weights):
            weights = "float"
        self.weights: CpuWeights = weights
        """The weight format passes that feed few tokens use (`packedweights.py`)."""
        self.native_int4 = native
        """The layers' int4 products use the project's kernel (`native.py`) where it
        runs; a compiled step takes torch's (the kernel is cheaper only called directly)."""
        kernel = native_kernels.kernel() if native and self.device.type == "cpu" else None
        self.attention_kernel = (
            kernel
            if kernel is not None
            and self.dtype == torch.float32
            and kernel.attends(self.heads, self.kv_heads, self.head_dim)
            else None
        )
        """An eager one-token pass attends with the project's kernel (`native.py`)."""
        rotary = inner.rotary_emb
        self.inv_freq = rotary.inv_freq.to(device=self.device, dtype=torch.float)
        self.attention_scaling = float(getattr(rotary, "attention_scaling", 1.0))
        self.tokens: list[int] = []
        self.capacity = 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.cos = torch.empty(0)
        self.sin = torch.empty(0)
        self.qk_v_sizes = [
            (self.heads + self.kv_heads) * self.head_dim,
            self.kv_heads * self.head_dim,
        ]
        self.parts = [self._layer_parts(i, layer) for i, layer in enumerate(self.layers)]
        self.final_norm = _rms_norm(self.norm, self.dtype)
        self.head_proj = self._head_projection()
        self.step: CompiledStep | None = None
        """Every layer of a one-token pass compiled as one graph, when asked for."""
        self.native_layers = nativelayers.for_cache(self)
        """Passes feeding a few tokens run every layer in one call to the project's kernels
        (`nativelayers.py`), where the model's layers are of the form they take."""
        self.kv_dtype = torch.float16 if self.native_layers is not None else self.dtype
        """The KV cache's dtype: float16 for the native layers (half the bytes a decoding
        step reads at long context, as llama.cpp keeps it), else the model's."""

    def _layer_parts(self, i: int, layer: Any) -> LayerParts:
        attn, mlp = layer.self_attn, layer.mlp
        return LayerParts(
            attn=attn,
            mlp=mlp,
            input_norm=_rms_norm(layer.input_layernorm, self.dtype),
            post_norm=_rms_norm(layer.post_attention_layernorm, self.dtype),
            qkv=self._projection(f"{i}.qkv", fuse_linears(attn.q_proj, attn.k_proj, attn.v_proj)),
            o_proj=self._linear(f"{i}.o", attn.o_proj),
            gate_up=self._projection(f"{i}.gate_up", fuse_linears(mlp.gate_proj, mlp.up_proj)),
            down_proj=self._linear(f"{i}.down", mlp.down_proj),
        )

    def _projection(
        self, key: str, fused: tuple[torch.Tensor, torch.Tensor | None] | None
    ) -> Projection | None:
        if fused is None:
            return None
        weight, bias = fused
        packed = packed_for(self.model, key, weight, self.weights, self.native_int4)
        return Projection(weight, bias, packed)

    def _linear(self, key: str, module: Any) -> Callable[[torch.Tensor], torch.Tensor]:
        """A plain float linear as a `Projection`; anything else (a quantized layer) as is."""
        if type(module) is not torch.nn.Linear or not module.weight.dtype.is_floating_point:
            return module
        return self._projection(key, (module.weight, module.bias)) or module

    def _head_projection(self) -> Callable[[torch.Tensor], torch.Tensor]:
        head = self.head
        if type(head) is not torch.nn.Linear or not head.weight.dtype.is_floating_point:
            return head
        weight_t = _transposed_head(head, self.device)
        packed = packed_for(self.model, "head", head.weight, self.weights, self.native_int4)
        if packed is None:
            return Projection(head.weight, head.bias, None, weight_t)
        return HeadProjection(head.weight, head.bias, packed, weight_t)

    # cache management -------------------------------------------------------------------
    def fork(self) -> LeanCache:
        """An empty cache sharing this one's model and fused weights."""
        other = copy.copy(self)
        other.tokens = []
        other.capacity = 0
        other.keys = []
        other.values = []
        other.cos = torch.empty(0)
        other.sin = torch.empty(0)
        return other

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
        # always a free slot after the tokens: a window onto every slot would be another
        # memory layout for the compiled step (`compiled.py`), and another compilation
        if length < self.capacity:
            return
        capacity = max(INITIAL_CAPACITY, self.capacity)
        while capacity <= length:
            capacity *= 2
        shape = (1, self.kv_heads, capacity, self.head_dim)
        used = len(self.tokens)
        for store in (self.keys, self.values):
            for i in range(len(self.layers)):
                grown = torch.empty(shape, device=self.device, dtype=self.kv_dtype)
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
        return self._head(self._hidden(new_ids, keep_logits))

    def forward_rows(self, new_ids: Sequence[int], rows: int) -> LazyLogits | torch.Tensor:
        """Like `forward`, but on a CPU each position's logits are computed when first read.
        A verify pass reads only up to the first rejected draft token, and the output head
        (a small model's largest matrix) then runs on one or two positions instead of all.
        On a GPU the head is cheap and each read would wait for the device, so all rows
        come at once."""
        if self.device.type != "cpu":
            return self.forward(new_ids, rows)
        return LazyLogits(self._hidden(new_ids, rows), self._head)

    def _hidden(self, new_ids: Sequence[int], keep: int) -> torch.Tensor:
        past = len(self.tokens)
        n = len(new_ids)
        self._ensure(past + n)
        try:
            hidden = self._forward(list(new_ids), past, keep)
        except BaseException:
            self.tokens = []  # a half-written cache cannot be trusted
            raise
        self.tokens.extend(new_ids)
        return hidden

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits for final-norm hidden states [positions, hidden]."""
        return self.head_proj(hidden)

    def _forward(self, ids: list[int], past: int, keep: int) -> torch.Tensor:
        """The layers and the final norm; the last `keep` positions' states."""
        n = len(ids)
        end = past + n
        x = self.embed(torch.tensor([ids], dtype=torch.long, device=self.device))
        layers = self.native_layers
        if layers is not None and (n <= native_kernels.MAX_ROWS or layers.reads_prompts):
            step = native_kernels.MAX_KERNEL_ROWS
            chunks = [
                layers.run(x[0, s : s + step], past + s, self.cos, self.sin, self.keys, self.values)
                for s in range(0, n, step)
            ]
            return self.final_norm(torch.cat(chunks)[-keep:])
        if n == 1 and past > 0 and self.step is not None:
            # a decoding step: every layer as one compiled graph (None: it cannot run)
            out = self.step.run(self, x, self.cos[:end], self.sin[:end], self.keys, self.values)
            if out is not None:
                return self.final_norm(out[0])
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
        x = self._layers(x, cos, sin, mask, causal, past, self.keys, self.values)
        return self.final_norm(x[0, -keep:])

    def _layers(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        causal: bool,
        past: int,
        keys_: list[torch.Tensor],
        values_: list[torch.Tensor],
    ) -> torch.Tensor:
        """Every layer over the embedded new tokens `x` [1, n, hidden], their keys and values
        written at `past` into `keys_`/`values_`."""
        for parts, keys, values in zip(self.parts, keys_, values_, strict=True):
            x = self._layer(x, cos, sin, mask, causal, past, keys, values, parts)
        return x

    def _layer(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        causal: bool,
        past: int,
        keys: torch.Tensor,
        values: torch.Tensor,
        parts: LayerParts,
    ) -> torch.Tensor:
        """One layer; its keys and values written at `past`."""
        n = x.shape[1]
        end = past + n
        h = parts.input_norm(x)
        if parts.qkv is not None:
            qk, v = parts.qkv(h).split(self.qk_v_sizes, dim=-1)
        else:
            attn = parts.attn
            qk, v = torch.cat((attn.q_proj(h), attn.k_proj(h)), dim=-1), attn.v_proj(h)
        # the rotary embedding on queries and keys at once
        qk = qk.view(1, n, self.heads + self.kv_heads, self.head_dim).transpose(1, 2)
        qk = qk * cos + _rotate_half(qk) * sin
        q, k = qk.split((self.heads, self.kv_heads), dim=1)
        v = v.view(1, n, self.kv_heads, self.head_dim).transpose(1, 2)
        keys[:, :, past:end] = k
        values[:, :, past:end] = v
        if (
            n == 1
            and self.attention_kernel is not None
            and keys.dtype == torch.float32
            and not torch.compiler.is_compiling()
        ):
            out = self.attention_kernel.attend(q, keys, values, end, self.scaling)
        else:
            # a prompt from the start attends over its own keys and values as computed (in
            # a float16 cache they are rounded), later passes over the cache's
            seen_k = k if past == 0 else keys[:, :, :end].to(q.dtype)
            seen_v = v if past == 0 else values[:, :, :end].to(q.dtype)
            out = F.scaled_dot_product_attention(
                q,
                seen_k,
                seen_v,
                attn_mask=mask,
                is_causal=causal,
                scale=self.scaling,
                enable_gqa=self.gqa,
            )
        x = x + parts.o_proj(out.transpose(1, 2).reshape(1, n, -1))
        h = parts.post_norm(x)
        if parts.gate_up is None:
            return x + parts.mlp(h)
        gate, up = parts.gate_up(h).chunk(2, dim=-1)
        return x + parts.down_proj(parts.mlp.act_fn(gate) * up)

    def _decoding_step(
        self,
        x: torch.Tensor,
        cos_upto: torch.Tensor,
        sin_upto: torch.Tensor,
        keys_: list[torch.Tensor],
        values_: list[torch.Tensor],
    ) -> torch.Tensor:
        """`_layers` for one new token, what `step` compiles. Its position comes as the
        length of the rotary tables given (`end`), not as an int: that length and the
        caches' capacity are the graph's only symbolic sizes, the model's are constants."""
        past = cos_upto.shape[0] - 1
        cos, sin = cos_upto[past:][None, None], sin_upto[past:][None, None]
        return self._layers(x, cos, sin, None, False, past, keys_, values_)

    def compile_decode_step(self) -> None:
        """Run one-token passes through `_layers` compiled as one graph (`compiled.py`) from
        now on; it compiles on the next such pass. Forks made after this share it.

        int4 layers then multiply with torch's kernel: a compiled graph can reach the
        project's kernel only through the dispatcher, whose per-call cost made a pass
        slower, while called directly it is the faster one (docs/engine-decisions.md)."""
        if self.native_layers is not None:
            self.native_layers = None
            self.kv_dtype = self.dtype
            self.reset()
            self.keys, self.values, self.capacity = [], [], 0
        if self.weights == "int4" and self.native_int4:
            self.native_int4 = False
            self.parts = [self._layer_parts(i, layer) for i, layer in enumerate(self.layers)]
            for i in range(len(self.layers)):
                for key in ("qkv", "o", "gate_up", "down"):
                    forget_packed(self.model, f"{i}.{key}", self.weights, True)
        self.step = CompiledStep(LeanCache._decoding_step, _decoding_sizes)


def _decoding_sizes(args: tuple[object, ...]) -> list[tuple[torch.Tensor, int]]:
    """What varies between calls of `LeanCache._decoding_step`: the rotary tables' length
    (the position) and every key and value cache's capacity."""
    _self, _x, cos_upto, sin_upto, keys, values = args
    assert isinstance(cos_upto, torch.Tensor) and isinstance(sin_upto, torch.Tensor)
    assert isinstance(keys, list) and isinstance(values, list)
    return [(cos_upto, 0), (sin_upto, 0), *((t, 2) for t in keys + values)]


@dataclass(frozen=True)
class LayerParts:
    """What one layer's pass calls: the model's modules (for what is not fused) and the
    projections and norms the lean forward made of them."""

    attn: Any
    mlp: Any
    input_norm: Callable[[torch.Tensor], torch.Tensor]
    post_norm: Callable[[torch.Tensor], torch.Tensor]
    qkv: Projection | None
    o_proj: Callable[[torch.Tensor], torch.Tensor]
    gate_up: Projection | None
    down_proj: Callable[[torch.Tensor], torch.Tensor]


class LazyLogits:
    """Logits per position, each computed on first access: `len()` and `[i]` like the
    [positions, vocab] tensor `forward` returns."""

    def __init__(self, hidden: torch.Tensor, head: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.hidden = hidden
        self.head = head
        self.rows: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return int(self.hidden.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        if i not in self.rows:
            self.rows[i] = self.head(self.hidden[i : i + 1])[0]
        return self.rows[i]


def fuse_linears(*linears: Any) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """One weight (and bias) for plain `nn.Linear`s that read the same input; their own
    weights become row views of it, so no memory is added and their results are unchanged.
    None when they are not plain float linears alike (quantized layers keep their own)."""
    if any(type(layer) is not torch.nn.Linear for layer in linears):
        return None
    done = getattr(linears[0], "_lean_fused", None)
    if done is not None and done[2] == [layer.weight.data_ptr() for layer in linears]:
        return done[0], done[1]  # fused already, by an earlier cache over this model
    weights = [layer.weight for layer in linears]
    first = weights[0]
    if not first.dtype.is_floating_point or any(
        w.dtype != first.dtype or w.device != first.device or w.shape[1] != first.shape[1]
        for w in weights
    ):
        return None
    biases = [layer.bias for layer in linears]
    if any(b is None for b in biases) and any(b is not None for b in biases):
        return None
    with torch.no_grad():
        weight = torch.cat([w.detach() for w in weights])
        bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])
        start = 0
        for layer, w in zip(linears, weights, strict=True):
            rows = w.shape[0]
            layer.weight = torch.nn.Parameter(weight[start : start + rows], w.requires_grad)
            if bias is not None:
                layer.bias = torch.nn.Parameter(
                    bias[start : start + rows], layer.bias.requires_grad
                )
            start += rows
    linears[0]._lean_fused = (weight, bias, [layer.weight.data_ptr() for layer in linears])
    return weight, bias


def _rms_norm(module: Any, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """`module` (a Qwen2/Llama RMSNorm) as one `F.rms_norm` call where that computes the same
    bits (a float32 model; tested), else the module itself."""
    weight = getattr(module, "weight", None)
    eps = getattr(module, "variance_epsilon", None)
    if (
        dtype != torch.float32
        or not type(module).__name__.endswith("RMSNorm")
        or not isinstance(weight, torch.Tensor)
        or weight.dtype != torch.float32
        or not isinstance(eps, float)
    ):
        return module
    return RmsNorm(weight, eps)


class RmsNorm:
    """`F.rms_norm` with a module's weight and epsilon."""

    def __init__(self, weight: torch.Tensor, eps: float) -> None:
        self.weight = weight
        self.eps = eps
        self.shape = (int(weight.shape[-1]),)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.shape, self.weight, self.eps)


def _transposed_head(head: Any, device: torch.device) -> torch.Tensor | None:
    if device.type != "cpu" or type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    weight = head.weight
    if weight.dtype != torch.float32 or weight.numel() * 4 > TRANSPOSED_HEAD_LIMIT:
        return None
    return weight.detach().t().contiguous()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
