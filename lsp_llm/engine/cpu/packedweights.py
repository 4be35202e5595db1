"""Weight-only int8 and int4 copies of a float model's linear weights, for decoding on a CPU.

Decoding one token of a 135M-parameter model in float32 reads 540 MB of weights; on a
small CPU that reading is most of the pass. torch ships CPU kernels that multiply
bfloat16 activations by int8 weights with a scale per output row
(`_weight_int8pack_mm`) or by int4 weights with a scale and zero per group of 32 inputs
(`_weight_int4pack_mm_for_cpu`); they read 4x / 8x less. They loop over the rows they are
fed, so past a few rows (a prompt being read) float32's GEMM is faster: a `Projection`
keeps the float weight for those passes and uses the packed copy when a pass feeds at most
`FEW_ROWS` tokens (decoding, speculative verification). On an x86-64 CPU with AVX2 and a
C++ compiler, int4 goes through the project's own kernel instead (`native.py`: integer
dot products over activations held as int16, faster per pass), in the same block
form.

The output head gets one more step (`HeadProjection`): its bfloat16 logits are too coarse
to tell close candidates apart, so the few best rows are recomputed in float32 from the
float weight; the greedy choice is then the float head's choice among them.

The measurements behind `FEW_ROWS`: docs/engine-decisions.md.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F

from lsp_llm.engine.cpu import native as native_kernels

CpuWeights = Literal["float", "int8", "int4"]
FEW_ROWS = 16
"""Passes feeding up to this many tokens use the packed weights; longer ones float32."""
INT4_GROUP = 32
HEAD_REFINE = 8
"""Output-head candidates per position recomputed in float32."""

_QUANTIZATION: dict[str, CpuWeights] = {"none": "float", "8bit": "int8", "4bit": "int4"}


def cpu_weights(quantization: str) -> CpuWeights:
    """The CPU weight format a resolved `quantization` setting asks for."""
    return _QUANTIZATION.get(quantization, "float")


def kernels_available(weights: CpuWeights) -> bool:
    """Whether this torch build has the CPU kernel `weights` needs."""
    if weights == "int8":
        return hasattr(torch.ops.aten, "_weight_int8pack_mm")
    if weights == "int4":
        return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and hasattr(
            torch.ops.aten, "_convert_weight_to_int4pack_for_cpu"
        )
    return True


Packed = Callable[[torch.Tensor], torch.Tensor]
"""[rows, in] activations (any float dtype) -> [rows, out] bfloat16."""


class Int8Rows:
    """Symmetric int8 with one bfloat16 scale per output row."""

    def __init__(self, weight: torch.Tensor) -> None:
        w = weight.detach().float()
        # the kernel multiplies by the bfloat16 scale, so quantize against that value
        scale = (w.abs().amax(dim=1) / 127).clamp(min=1e-12).to(torch.bfloat16)
        self.scale = scale
        self.q = torch.round(w / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int8pack_mm(x.to(torch.bfloat16), self.q, self.scale)

    def dequantized(self) -> torch.Tensor:
        return self.q.float() * self.scale.float()[:, None]


class Int4Groups:
    """Asymmetric int4 over groups of `INT4_GROUP` inputs: w = (q - 8) * scale + zero, with
    scale and zero in bfloat16 (a GGUF Q4_1 block is this form with float16 scale and min)."""

    def __init__(self, weight: torch.Tensor, group: int = INT4_GROUP) -> None:
        w = weight.detach().float()
        out, inp = w.shape
        if inp % group:
            raise ValueError(f"int4 needs inputs in groups of {group}, got {inp}")
        g = w.reshape(out, inp // group, group)
        low = g.amin(dim=-1, keepdim=True)
        high = g.amax(dim=-1, keepdim=True)
        scale = ((high - low) / 15).clamp(min=1e-12).to(torch.bfloat16).float()
        zero = (low + 8 * scale).to(torch.bfloat16).float()
        q = torch.round((g - zero) / scale + 8).clamp(0, 15).to(torch.int32).reshape(out, inp)
        self.group = group
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
        self.scales_zeros = (
            torch.cat([scale, zero], dim=-1).transpose(0, 1).contiguous().to(torch.bfloat16)
        )
        self._q = q  # for dequantized(); int32, freed after packing by callers that want
        self._scale, self._zero = scale, zero

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.to(torch.bfloat16), self.packed, self.group, self.scales_zeros
        )

    def dequantized(self) -> torch.Tensor:
        out, inp = self._q.shape
        q = self._q.reshape(out, inp // self.group, self.group).float()
        return ((q - 8) * self._scale + self._zero).reshape(out, inp)

    def forget_codes(self) -> None:
        del self._q, self._scale, self._zero


def pack(weight: torch.Tensor, weights: CpuWeights, native: bool = True) -> Packed | None:
    """A packed copy of a float [out, in] weight in format `weights` (None for float).
    int4 uses the project's own kernel (`native.py`) where it runs and `native` allows,
    else torch's."""
    if weights == "int8":
        return Int8Rows(weight)
    if weights == "int4":
        kernel = native_kernels.kernel() if native else None
        if kernel is not None:
            return native_kernels.Q4Blocks(weight, kernel)
        packed = Int4Groups(weight)
        packed.forget_codes()
        return packed
    return None


class Projection:
    """x @ W.T + b over a float weight; a pass feeding at most `FEW_ROWS` tokens uses the
    packed copy when there is one. `weight_t`, when given, is W transposed (the layout a
    small CPU head is read fastest in)."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        packed: Packed | None = None,
        weight_t: torch.Tensor | None = None,
    ) -> None:
        self.weight = weight
        self.bias = bias
        self.packed = packed
        self.weight_t = weight_t

    def rows_packed(self, x: torch.Tensor) -> bool:
        return self.packed is not None and x.numel() <= FEW_ROWS * x.shape[-1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None and self.rows_packed(x):
            flat = x.reshape(-1, x.shape[-1])
            y = self.packed(flat).to(x.dtype).reshape(*x.shape[:-1], -1)
            return y if self.bias is None else y + self.bias
        if self.weight_t is not None:
            y = x @ self.weight_t
            return y if self.bias is None else y + self.bias
        return F.linear(x, self.weight, self.bias)


class HeadProjection(Projection):
    """The output head: packed logits, with each position's best `HEAD_REFINE` candidates
    recomputed from the float weight (greedy decoding picks among those)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.rows_packed(x):
            return super().__call__(x)
        logits = super().__call__(x)
        flat = logits.reshape(-1, logits.shape[-1])
        hidden = x.reshape(-1, x.shape[-1])
        top = flat.topk(HEAD_REFINE, dim=-1).indices  # [rows, k]
        exact = torch.einsum("rd,rkd->rk", hidden, self.weight[top])
        if self.bias is not None:
            exact = exact + self.bias[top]
        flat.scatter_(1, top, exact.to(flat.dtype))
        return logits


_packed_cache: weakref.WeakKeyDictionary[Any, dict[tuple[str, CpuWeights, bool], Packed | None]] = (
    weakref.WeakKeyDictionary()
)


def packed_for(
    owner: Any, key: str, weight: torch.Tensor, weights: CpuWeights, native: bool = True
) -> Packed | None:
    """`pack(weight, weights, native)`, made once per `owner` (a model) and `key` (which
    weight): every cache over one model (lanes, benchmarks) shares the packed copies."""
    if weights == "float":
        return None
    table = _packed_cache.setdefault(owner, {})
    if (key, weights, native) not in table:
        table[(key, weights, native)] = pack(weight, weights, native)
    return table[(key, weights, native)]


def forget_packed(owner: Any, key: str, weights: CpuWeights, native: bool) -> None:
    """Drop the shared copy `packed_for` made (caches that hold it keep it alive)."""
    _packed_cache.get(owner, {}).pop((key, weights, native), None)
