"""A lean forward's layers as one call into the project's CPU kernels (`decode_layers` in
`cpukernels.cpp`), for passes that feed a few tokens: decoding steps, speculative
verification, the few tokens a keystroke changes.

The eager lean forward runs a layer as about twenty PyTorch operations and four calls of
the int4 kernel; over SmolLM2's 30 layers that Python and dispatch work cost about as much
as the products themselves (docs/engine-decisions.md).
`decode_layers` does all of a pass's layers in C++: the norms, the int4 products (the
same kernel and weight blocks as `Q4Blocks`), the rotary embedding, writing the keys and
values into the cache in float16, the attention of the new tokens over the cached keys
(causal among the new tokens) and the SiLU MLP. The final norm and the output head stay
with `LeanCache`.

The attention reads the KV cache in float16, as llama.cpp keeps it: in float32, reading a
long context's cache was a large part of a pass. The keys are
cut into chunks of 64 and each (key/value head, chunk) is a piece of work for the
threads, merged after: SmolLM2's 3 key/value heads no longer leave one of 2 threads idle
a third of the time, and every new token of a pass reads a chunk while it is in cache.

It takes what the lean forward built for an int4 model: fused q/k/v and gate/up
projections packed as `Q4Blocks`, the output and down projections too (without biases),
float32 RMS norms, SiLU, rotary tables in float32; the cache keeps keys and values in
float16 for it (`LeanCache.kv_dtype`). `for_cache`
returns None for anything else, and the lean forward keeps its PyTorch layers.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from lsp_llm.engine.cpu import ggufblocks
from lsp_llm.engine.cpu import native as native_kernels

if TYPE_CHECKING:
    from lsp_llm.engine.leanforward import LayerParts, LeanCache


class NativeLayers:
    """Pointers to one model's layer weights, and the call that runs them."""

    def __init__(
        self,
        kernel: native_kernels.Kernel,
        weights: list[torch.Tensor | None],
        formats: list[int],
        sizes: Sequence[int],
        eps: float,
        scale: float,
        reads_prompts: bool = False,
    ) -> None:
        self.kernel = kernel
        self._weights = weights  # kept alive: the table points into them
        self._table = (ctypes.c_void_p * len(weights))(
            *[None if w is None else w.data_ptr() for w in weights]
        )
        self._formats = (ctypes.c_int * len(formats))(*formats)
        self.reads_prompts = reads_prompts
        """Prompts are read through these layers too, `native.MAX_KERNEL_ROWS` tokens a
        call (a model whose weights are only blocks, with no float copy to multiply)."""
        self._sizes = (ctypes.c_int * len(sizes))(*sizes)
        self.layers = int(sizes[0])
        self.eps = eps
        self.scale = scale
        self._caches: (
            tuple[tuple[int, ...], ctypes.Array[ctypes.c_void_p], ctypes.Array[ctypes.c_void_p]]
            | None
        ) = None

    def run(
        self,
        x: torch.Tensor,
        past: int,
        cos: torch.Tensor,
        sin: torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
    ) -> torch.Tensor:
        """The layers over x [n, hidden] (n <= `native.MAX_KERNEL_ROWS`, embedded new tokens at
        positions past..past+n-1), in place; their keys and values written into the
        float16 caches [1, kv, capacity, dim]; cos/sin the rotary tables [capacity, dim]."""
        n = int(x.shape[0])
        capacity = int(keys[0].shape[2])
        if keys[0].dtype != torch.float16 or values[0].dtype != torch.float16:
            raise ValueError("decode_layers needs float16 keys and values")
        x = x.to(torch.float32).contiguous()
        key = tuple(t.data_ptr() for t in keys) + tuple(t.data_ptr() for t in values)
        if self._caches is None or self._caches[0] != key:
            self._caches = (
                key,
                (ctypes.c_void_p * self.layers)(*key[: self.layers]),
                (ctypes.c_void_p * self.layers)(*key[self.layers :]),
            )
        code = self.kernel.decode_layers(
            self._table,
            self._formats,
            self._sizes,
            self.eps,
            self.scale,
            x.data_ptr(),
            n,
            past,
            cos.data_ptr(),
            sin.data_ptr(),
            self._caches[1],
            self._caches[2],
            capacity,
            torch.get_num_threads(),
        )
        if code != 0:
            raise ValueError(f"decode_layers refused {n} tokens at {past}/{capacity} ({code})")
        return x


def for_cache(cache: LeanCache) -> NativeLayers | None:
    """`NativeLayers` over what `cache` built, or None where its layers are not all of the
    form `decode_layers` takes: the project's int4 blocks (fused q/k/v and gate/up), or a
    GGUF model's block-format layers (`ggufblocks.py`)."""
    config = cache.model.config
    if (
        cache.attention_kernel is None
        or cache.dtype != torch.float32
        or getattr(config, "hidden_act", None) != "silu"
    ):
        return None
    if cache.weights == "int4":
        return _from_parts(cache, _int4_layer)
    return _from_parts(cache, _block_layer, reads_prompts=True)


Layer = tuple[list[torch.Tensor | None], list[int]]
"""One layer's pointers past its norms (q, k, v, their biases, o, gate, up, down) and its
matrices' formats (q, k, v, o, gate, up, down)."""


def _int4_layer(parts: LayerParts) -> Layer | None:
    from lsp_llm.engine.cpu.packedweights import Projection

    def blocks(p: object, bias_ok: bool = False) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        if not isinstance(p, Projection) or not isinstance(p.packed, native_kernels.Q4Blocks):
            return None
        if p.bias is not None and not (bias_ok and p.bias.dtype == torch.float32):
            return None
        return p.packed.blocks, None if p.bias is None else p.bias.detach().contiguous()

    qkv, o, gate_up, down = (
        blocks(parts.qkv, True),
        blocks(parts.o_proj),
        blocks(parts.gate_up),
        blocks(parts.down_proj),
    )
    if qkv is None or o is None or gate_up is None or down is None:
        return None
    q4 = ggufblocks.Q4_1
    pointers = [qkv[0], None, None, qkv[1], None, None, o[0], gate_up[0], None, down[0]]
    return pointers, [q4] * 7


def _block_layer(parts: LayerParts) -> Layer | None:
    attn, mlp = parts.attn, parts.mlp
    mats = [attn.q_proj, attn.k_proj, attn.v_proj, parts.o_proj, mlp.gate_proj, mlp.up_proj]
    mats.append(parts.down_proj)
    if not all(isinstance(m, ggufblocks.BlockLinear) for m in mats):
        return None
    q, k, v, o, gate, up, down = mats
    if o.bias is not None or gate.bias is not None or up.bias is not None or down.bias is not None:
        return None
    biases = [None if m.bias is None else m.bias.detach().float().contiguous() for m in (q, k, v)]
    pointers = [q.rows, k.rows, v.rows, *biases, o.rows, gate.rows, up.rows, down.rows]
    return pointers, [m.fmt for m in mats]


def _from_parts(
    cache: LeanCache, layer_of: Callable[[LayerParts], Layer | None], reads_prompts: bool = False
) -> NativeLayers | None:
    from lsp_llm.engine.leanforward import RmsNorm

    kernel = cache.attention_kernel
    assert kernel is not None
    weights: list[torch.Tensor | None] = []
    formats: list[int] = []
    eps: set[float] = set()
    for parts in cache.parts:
        first, second = parts.input_norm, parts.post_norm
        found = layer_of(parts)
        if found is None or not isinstance(first, RmsNorm) or not isinstance(second, RmsNorm):
            return None
        pointers, kinds = found
        eps.update((first.eps, second.eps))
        weights += [first.weight.detach().contiguous(), second.weight.detach().contiguous()]
        weights += pointers
        formats += kinds
    if len(eps) != 1:
        return None
    sizes = (
        len(cache.parts),
        int(cache.model.config.hidden_size),
        cache.heads,
        cache.kv_heads,
        cache.head_dim,
        int(cache.model.config.intermediate_size),
    )
    return NativeLayers(kernel, weights, formats, sizes, eps.pop(), cache.scaling, reads_prompts)
