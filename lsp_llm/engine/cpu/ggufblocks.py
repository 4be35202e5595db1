"""Layers over GGUF tensors in their own block formats: a linear layer and an embedding that
read a mapped file's bytes (`ggufmap.py`) through the project's kernels (`native.py`,
`cpukernels.cpp`), with nothing dequantized beyond the rows a pass reads.

The formats are ggml's: the type numbers below are the file's. A quantized row is a run
of blocks (32 weights, or 256 in the K formats) holding small integer codes and float16
scales; the kernels decode each group of 32 codes once per pass and multiply them with the
activations in integer arithmetic. Rows are independent, so the row order of a tensor can
be changed losslessly (the Llama converter's query/key permutation is undone that way).
"""

from __future__ import annotations

import torch

from lsp_llm.engine.cpu import native as native_kernels

FORMATS: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    6: "Q5_0",
    7: "Q5_1",
    8: "Q8_0",
    12: "Q4_K",
    13: "Q5_K",
    14: "Q6_K",
    30: "BF16",
}
"""The formats the kernels multiply by, by ggml type number."""
F32 = 0
Q4_1 = 3


def format_name(kind: int) -> str:
    return FORMATS.get(kind, f"type {kind}")


class BlockLinear(torch.nn.Module):
    """y = x @ W.T (+ b) with W's rows in block format `fmt` ([out, row bytes] uint8)."""

    def __init__(
        self,
        rows: torch.Tensor,
        fmt: int,
        in_features: int,
        bias: torch.Tensor | None,
        kernel: native_kernels.Kernel,
    ) -> None:
        super().__init__()
        if fmt not in FORMATS or kernel.row_bytes(fmt, in_features) != rows.shape[1]:
            raise ValueError(
                f"{format_name(fmt)} rows of {in_features} inputs cannot be multiplied here"
            )
        self.rows = rows
        self.fmt = fmt
        self.in_features = in_features
        self.out_features = int(rows.shape[0])
        self.bias = bias
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        y = self.kernel.block_linear(self.fmt, flat, self.rows, self.in_features)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def dequantized(self) -> torch.Tensor:
        """The whole weight in float32 (tests and references; a model never needs it)."""
        ids = torch.arange(self.out_features)
        return self.kernel.block_rows(self.fmt, self.rows, self.in_features, ids)

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, {format_name(self.fmt)}"


class BlockEmbedding(torch.nn.Module):
    """Token ids -> their rows of a block-format table, in float32."""

    def __init__(
        self, rows: torch.Tensor, fmt: int, dim: int, kernel: native_kernels.Kernel
    ) -> None:
        super().__init__()
        if fmt not in FORMATS or kernel.row_bytes(fmt, dim) != rows.shape[1]:
            raise ValueError(f"{format_name(fmt)} rows of {dim} values cannot be read here")
        self.rows = rows
        self.fmt = fmt
        self.dim = dim
        self.kernel = kernel

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        flat = self.kernel.block_rows(self.fmt, self.rows, self.dim, ids.reshape(-1))
        return flat.reshape(*ids.shape, self.dim)

    def extra_repr(self) -> str:
        return f"{self.rows.shape[0]} x {self.dim}, {format_name(self.fmt)}"
