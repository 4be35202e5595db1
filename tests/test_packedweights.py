"""Packed int8/int4 CPU weights: what the kernels compute, when they are used, the head's
float refinement, and the `quantization` setting on a CPU end to end."""

from __future__ import annotations

import pytest
import torch

from lsp_llm.config import Settings
from lsp_llm.engine.cpu import native
from lsp_llm.engine.cpu import packedweights as packedweights
from lsp_llm.engine.cpu.packedweights import (
    FEW_ROWS,
    HeadProjection,
    Int4Groups,
    Int8Rows,
    Projection,
    kernels_available,
)
from lsp_llm.engine.leanforward import LeanCache
from lsp_llm.engine.load.loading import _load_one, cpu_quantization, load
from lsp_llm.engine.worker import Engine
from lsp_llm.generation.types import GenerationRequest, Speculation

pytestmark = pytest.mark.skipif(
    not (kernels_available("int8") and kernels_available("int4")),
    reason="this torch has no packed CPU kernels",
)


def test_int8_rows_compute_the_dequantized_product_and_round_to_half_a_step():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 64, generator=g)
    packed = Int8Rows(w)
    step = packed.scale.float()[:, None]
    assert ((packed.dequantized() - w).abs() <= step / 2 + 1e-6).all()
    x = torch.randn(3, 64, generator=g).bfloat16().float()  # exact in bfloat16
    expected = x @ packed.dequantized().t()
    torch.testing.assert_close(packed(x).float(), expected, rtol=1e-2, atol=2e-2)


def test_int4_groups_are_exact_on_weights_that_are_int4_already():
    """A GGUF Q4_1 block (16 levels between a min and a max per 32 weights) comes back
    exactly when its scale and zero are bfloat16 numbers."""
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 16, (48, 64), generator=g).float()
    scale = (torch.rand(48, 2, 1, generator=g) / 8 + 0.01).bfloat16().float()
    zero = torch.randn(48, 2, 1, generator=g).bfloat16().float()
    w = ((codes.reshape(48, 2, 32) - 8) * scale + zero).reshape(48, 64)
    w[:, 0] = (0 - 8) * scale[:, 0, 0] + zero[:, 0, 0]  # each group spans codes 0..15
    w[:, 1] = (15 - 8) * scale[:, 0, 0] + zero[:, 0, 0]
    w[:, 32] = (0 - 8) * scale[:, 1, 0] + zero[:, 1, 0]
    w[:, 33] = (15 - 8) * scale[:, 1, 0] + zero[:, 1, 0]
    packed = Int4Groups(w)
    torch.testing.assert_close(packed.dequantized(), w, rtol=0, atol=1e-6)
    x = torch.randn(2, 64, generator=g).bfloat16().float()
    torch.testing.assert_close(packed(x).float(), x @ w.t(), rtol=1e-2, atol=2e-2)


def test_projection_uses_packed_weights_only_for_few_rows():
    w = torch.randn(40, 64)
    packed = Int8Rows(torch.zeros(40, 64) + 1)  # a different matrix, to tell them apart
    projection = Projection(w, None, packed)
    few = torch.randn(1, FEW_ROWS, 64)
    many = torch.randn(1, FEW_ROWS + 1, 64)
    torch.testing.assert_close(
        projection(few), few.sum(-1, keepdim=True).expand(1, FEW_ROWS, 40), rtol=1e-2, atol=5e-2
    )
    assert torch.equal(projection(many), torch.nn.functional.linear(many, w))


def test_head_refines_the_best_candidates_in_float():
    """Two logits 0.01 apart round to the same bfloat16 number; the float head's order
    comes back for the candidates, so greedy picks what the float head picks."""
    hidden = torch.ones(1, 64)
    w = torch.zeros(100, 64)
    w[7] = 20.0 / 64
    w[3] = 20.01 / 64  # the float argmax, behind 7 once rounded
    head = HeadProjection(w, None, Int8Rows(w))
    logits = head(hidden)
    assert int(logits[0].argmax()) == 3
    torch.testing.assert_close(logits[0, [3, 7]], torch.tensor([20.01, 20.0]))


@pytest.mark.parametrize("weights", ["int8", "int4"])
def test_lean_forward_with_packed_weights_computes_the_float_model(tiny, weights):
    """On weights that are int8/int4 already (as SmolLM2's, from a 4-bit GGUF), the packed
    pass is the float pass but for bfloat16 activations."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny.target).eval()
    kind = Int8Rows if weights == "int8" else Int4Groups
    with torch.no_grad():
        for module in model.modules():
            if type(module) is torch.nn.Linear:
                module.weight.copy_(kind(module.weight).dequantized())
    ids = list(range(5, 45))
    exact, packed = LeanCache(model), LeanCache(model, weights)
    assert packed.weights == weights
    with torch.inference_mode():
        # a prompt (more than FEW_ROWS tokens) is read with the float weights, and the
        # head's best candidates are recomputed in float: the same best logit
        a, b = exact.forward(ids[:30])[0], packed.forward(ids[:30])[0]
        best = int(a.argmax())
        assert int(b.argmax()) == best
        torch.testing.assert_close(b[best], a[best], rtol=1e-6, atol=1e-6)
        for token in ids[30:]:
            a, b = exact.forward([token])[0], packed.forward([token])[0]
            assert (a - b).abs().max() < 0.05 * a.abs().max()
            assert int(b.argmax()) == int(a.argmax())


def test_cpu_quantization_setting(tiny, monkeypatch):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny.target).eval()
    assert cpu_quantization("none", model) == ("none", None)
    assert cpu_quantization("8bit", model) == ("8bit", None)
    assert cpu_quantization("auto", model) == ("none", None)  # under 16 MiB: stays float32
    monkeypatch.setattr("lsp_llm.engine.load.loading.CPU_AUTO_MIN_BYTES", 0)
    assert cpu_quantization("auto", model) == ("4bit", None)
    monkeypatch.setattr(packedweights, "kernels_available", lambda weights: False)
    quantization, warning = cpu_quantization("4bit", model)
    assert quantization == "none" and warning is not None and "no CPU kernel" in warning
    assert cpu_quantization("auto", model) == ("none", None)


def test_auto_packs_the_bundled_model_but_not_its_draft():
    """The bundled model (20 MB of float32) suggests 1.7x faster packed through the native
    layers (docs/performance.md), so `auto` packs it; its 4 MB draft stays float32."""
    from transformers import AutoModelForCausalLM

    from lsp_llm.engine.load.bundled import bundled_draft_dir, bundled_model_dir

    target = AutoModelForCausalLM.from_pretrained(bundled_model_dir()).eval()
    draft = AutoModelForCausalLM.from_pretrained(bundled_draft_dir()).eval()
    native_int4 = native.kernel() is not None and kernels_available("int4")
    assert cpu_quantization("auto", target) == ("4bit" if native_int4 else "none", None)
    assert cpu_quantization("auto", draft) == ("none", None)


def test_auto_keeps_the_bundled_model_float32_without_the_native_kernels(monkeypatch):
    """Through PyTorch's int4 kernel alone, packing costs a model that small speed."""
    from transformers import AutoModelForCausalLM

    from lsp_llm.engine.load.bundled import bundled_model_dir

    monkeypatch.setattr(native, "kernel", lambda: None)
    target = AutoModelForCausalLM.from_pretrained(bundled_model_dir()).eval()
    assert cpu_quantization("auto", target) == ("none", None)


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_quantized_load_on_cpu_decodes_with_packed_weights(tiny, quantization):
    loaded = load(
        Settings(model=str(tiny.target), draft_model=str(tiny.draft), quantization=quantization)
    )
    assert loaded.quantization == quantization and not loaded.warnings
    engine = Engine(loaded)
    try:
        expected = "int4" if quantization == "4bit" else "int8"
        lane = engine.decoder.lanes["interactive"]
        assert getattr(lane.target, "weights", None) == expected
        assert lane.draft is not None and getattr(lane.draft.cache, "weights", None) == expected
        ids = tuple(loaded.tokenizer.encode("def add(a, b):\n", add_special_tokens=False))
        done = engine.generate(GenerationRequest(ids, 8, speculation=Speculation("draft")))
    finally:
        engine.close()
    assert done.usage.completion_tokens == 8


@pytest.mark.parametrize("quantization", ["4bit", "8bit"])
def test_bitsandbytes_load_still_works_for_cuda_users(tiny, quantization):
    """The CUDA path loads through bitsandbytes; its loader runs on a CPU too."""
    model, _tokenizer = _load_one(
        str(tiny.target), Settings(), "cpu", torch.float32, quantization, "model"
    )
    kinds = {type(m).__name__ for m in model.modules()}
    assert ("Linear4bit" if quantization == "4bit" else "Linear8bitLt") in kinds
