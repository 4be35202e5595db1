"""The kernels' products over GGUF block formats as the file holds them (`ggufblocks.py`,
`cpukernels.cpp`), checked per format against ggml's own dequantization (the `gguf`
package's numpy reference) and a float64 product."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsp_llm.engine.cpu.ggufblocks import FORMATS, BlockEmbedding, BlockLinear

gguf_quants = pytest.importorskip("gguf.quants")
from gguf import GGMLQuantizationType  # noqa: E402

BLOCK = {
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
}
"""Quantized formats: weights and bytes per block."""
SCALES = {2: [0], 3: [0, 2], 6: [0], 7: [0, 2], 8: [0], 12: [0, 2], 13: [0, 2], 14: [208]}
"""Where each block's float16 scales (and minimums) sit."""
INT8_FORMATS = (2, 6, 8, 12, 13, 14)
"""Formats whose products take a prompt's activations as int8 where the CPU has VNNI."""
K_FORMATS = (12, 13, 14)
"""Those that take a decoding step's one row (and a verify pass's few) as int8 too."""


def random_rows(fmt: int, out: int, inputs: int, seed: int) -> np.ndarray:
    """Valid rows of format `fmt`: random codes, small random float16 scales."""
    rng = np.random.default_rng(seed)
    if fmt == 0:
        return (rng.standard_normal((out, inputs)).astype(np.float32) * 0.05).view(np.uint8)
    if fmt == 1:
        return (rng.standard_normal((out, inputs)).astype(np.float16) * 0.05).view(np.uint8)
    if fmt == 30:
        values = rng.standard_normal((out, inputs)).astype(np.float32) * 0.05
        return (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
    elems, size = BLOCK[fmt]
    blocks = rng.integers(0, 256, (out, inputs // elems, size), dtype=np.uint8)
    for at in SCALES[fmt]:
        scale = (rng.random((out, inputs // elems)) * 0.01 + 1e-3).astype(np.float16)
        if fmt in (3, 7) and at == 2:
            scale = -scale * 8  # a minimum below zero, as real blocks have
        blocks[:, :, at : at + 2] = scale.view(np.uint8).reshape(out, inputs // elems, 2)
    return blocks.reshape(out, -1)


def reference(rows: np.ndarray, fmt: int) -> np.ndarray:
    return gguf_quants.dequantize(rows, GGMLQuantizationType(fmt)).astype(np.float64)


SHAPES = [(40, 256), (7, 512), (130, 1536)]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize(("out", "inputs"), SHAPES)
@pytest.mark.parametrize("n", [1, 3, 5, 7, 64, 70])
def test_products_equal_the_dequantized_weights_to_the_activations_precision(
    kernel, fmt, out, inputs, n
):
    rows = random_rows(fmt, out, inputs, seed=fmt * 1000 + out + n)
    layer = BlockLinear(torch.from_numpy(rows.copy()), fmt, inputs, None, kernel)
    torch.manual_seed(n)
    x = torch.randn(n, inputs)
    y = layer(x)
    exact = x.double().numpy() @ reference(rows, fmt).T
    assert y.shape == (n, out) and y.dtype == torch.float32
    err = np.linalg.norm(y.double().numpy() - exact) / np.linalg.norm(exact)
    int8_step = fmt in K_FORMATS and n <= kernel.int8_decoding
    if fmt in INT8_FORMATS and (0 < kernel.int8_rows <= n or int8_step):
        # a prompt's rows with VNNI (and a K format's decoding step or verify pass): int8
        # activations per 32 inputs (llama.cpp's Q8_0; about 1% on random rows of 256), the
        # product exactly theirs times the dequantized weights
        assert err < 2e-2, err
        rounded = int8_rounded(x.numpy()) @ reference(rows, fmt).T
        assert np.linalg.norm(y.double().numpy() - rounded) / np.linalg.norm(rounded) < 1e-5
        return
    # float weights see float32 activations; quantized ones int16 activations per 32, and
    # the K formats 15-bit activations sharing a scale per 256 (llama.cpp: 8 bits per 256)
    bound = 1e-6 if fmt in (0, 1, 30) else 5e-4 if fmt in (12, 13, 14) else 1e-4
    assert err < bound, err


@pytest.mark.parametrize("fmt", [2, 6, 8])
@pytest.mark.parametrize("inputs", [96, 576])
def test_a_prompt_s_last_tile_may_be_part_empty(kernel, fmt, inputs):
    """32-input formats whose rows end inside a tile of 16 groups (576 inputs: SmolLM2's
    width): the spare lanes add nothing."""
    rows = random_rows(fmt, 9, inputs, seed=inputs + fmt)
    layer = BlockLinear(torch.from_numpy(rows.copy()), fmt, inputs, None, kernel)
    x = torch.randn(64, inputs, generator=torch.Generator().manual_seed(fmt))
    got = layer(x).double().numpy()
    exact = x.double().numpy() @ reference(rows, fmt).T
    if kernel.int8_rows:
        exact = int8_rounded(x.numpy()) @ reference(rows, fmt).T
    assert np.linalg.norm(got - exact) / np.linalg.norm(exact) < 1e-4


def int8_rounded(x: np.ndarray) -> np.ndarray:
    """x [n, inputs] float32 as the kernels round a prompt's activations: int8 codes per 32
    inputs, the scale the group's largest magnitude over 127 (float32, ties to even)."""
    groups = x.reshape(x.shape[0], -1, 32).astype(np.float32)
    amax = np.abs(groups).max(axis=2, keepdims=True)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    codes = np.clip(np.rint(groups * inv), -128, 127)
    return (codes.astype(np.float64) * (amax / np.float32(127)).astype(np.float64)).reshape(x.shape)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_rows_read_back_are_ggml_s_dequantization(kernel, fmt):
    rows = random_rows(fmt, 12, 512, seed=fmt)
    table = BlockEmbedding(torch.from_numpy(rows.copy()), fmt, 512, kernel)
    ids = torch.tensor([[3, 0, 11, 3]])
    got = table(ids)
    assert got.shape == (1, 4, 512)
    want = reference(rows, fmt)[ids[0].numpy()]
    np.testing.assert_allclose(got[0].double().numpy(), want, rtol=1e-6, atol=1e-7)


def test_a_bias_is_added_and_leading_dimensions_kept(kernel):
    rows = random_rows(6, 16, 256, seed=1)
    bias = torch.randn(16)
    layer = BlockLinear(torch.from_numpy(rows), 6, 256, bias, kernel)
    x = torch.randn(1, 3, 256)
    plain = BlockLinear(torch.from_numpy(rows), 6, 256, None, kernel)
    torch.testing.assert_close(layer(x), plain(x) + bias)
    assert layer(x).shape == (1, 3, 16)


def test_what_cannot_be_read_is_refused_with_a_reason(kernel):
    with pytest.raises(ValueError, match="Q4_K rows of 96 inputs"):
        BlockLinear(torch.zeros(4, 54, dtype=torch.uint8), 12, 96, None, kernel)
    with pytest.raises(ValueError, match="type 10"):
        BlockLinear(torch.zeros(4, 84, dtype=torch.uint8), 10, 256, None, kernel)
    table = BlockEmbedding(torch.from_numpy(random_rows(8, 4, 64, 0)), 8, 64, kernel)
    with pytest.raises(IndexError):
        table(torch.tensor([4]))
