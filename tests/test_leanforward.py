"""The lean forward pass gives the same logits as transformers' forward with its cache, in
every way the decoder uses it, and is chosen only for the models it covers."""

from __future__ import annotations

import pytest
import torch

from lsp_llm.engine import leanforward as leanforward
from lsp_llm.engine.kvcache import PrefixCache, cache_for
from lsp_llm.engine.leanforward import LeanCache, lean_supported
from lsp_llm.train.tiny import tiny_llama


@pytest.fixture(scope="module")
def models(tiny):
    from transformers import AutoModelForCausalLM

    qwen = AutoModelForCausalLM.from_pretrained(tiny.target).eval()
    return {"qwen2": qwen, "llama": tiny_llama(qwen.config.vocab_size)}


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
@pytest.mark.parametrize("layers", ["fused", "module by module"])
def test_same_logits_as_transformers_through_prefill_verify_crop_and_growth(
    models, arch, layers, monkeypatch
):
    monkeypatch.setattr(leanforward, "INITIAL_CAPACITY", 16)  # force the cache to grow
    if layers == "module by module":  # as for quantized layers: the model's own modules
        monkeypatch.setattr(leanforward, "fuse_linears", lambda *linears: None)
        monkeypatch.setattr(leanforward, "_rms_norm", lambda module, dtype: module)
        monkeypatch.setattr(leanforward, "_transposed_head", lambda head, device: None)
    model = models[arch]
    assert lean_supported(model)
    ids = torch.randint(
        0, model.config.vocab_size, (120,), generator=torch.Generator().manual_seed(1)
    )
    ids = ids.tolist()
    hf, lean = PrefixCache(model), LeanCache(model)
    steps = [
        ("prefill", ids[:40], 1),
        ("verify", ids[40:47], 7),  # several tokens after a cache: a causal mask
        ("crop", 43, 0),
        ("one", ids[43:44], 1),
        ("long", ids[44:100], 5),  # grows past the initial capacity twice
        ("reuse", ids[:70] + ids[101:110], 3),  # an edited prompt: shared prefix kept
    ]
    with torch.inference_mode():
        for name, arg, keep in steps:
            if name == "crop":
                hf.crop(arg)
                lean.crop(arg)
                continue
            if name == "reuse":
                kept = hf.reuse(arg)
                assert lean.reuse(arg) == kept == 70
                arg = arg[kept:]
            want = hf.forward(arg, keep_logits=keep)
            got = lean.forward(arg, keep_logits=keep)
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=name)
            assert lean.tokens == hf.tokens
    assert lean.capacity >= 110


def test_failed_forward_drops_the_cache(models):
    lean = LeanCache(models["qwen2"])
    with torch.inference_mode():
        lean.forward([1, 2, 3])
        with pytest.raises(IndexError):
            lean.forward([10**9])
    assert lean.tokens == []


def test_other_models_keep_transformers_forward(models):
    qwen = models["qwen2"]
    assert isinstance(cache_for(qwen), LeanCache)

    class Scaled:
        config = qwen.config.__class__(**{**qwen.config.to_dict(), "rope_scaling": None})
        model = qwen.model
        lm_head = qwen.lm_head

    Scaled.config.rope_parameters = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e4}
    assert not lean_supported(Scaled())

    split = Scaled()
    split.config = qwen.config
    split.hf_device_map = {"model.layers.0": 0, "model.layers.1": "cpu"}
    assert not lean_supported(split)

    class Gpt2:
        config = type("C", (), {"model_type": "gpt2"})()

    assert not lean_supported(Gpt2())
    assert isinstance(cache_for(Gpt2()), PrefixCache)


def test_fused_projections_are_views_and_change_nothing_for_transformers(tiny):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny.target).eval()
    ids = torch.tensor([[5, 9, 200, 31, 7]])
    with torch.inference_mode():
        before = model(ids).logits
    attn = model.model.layers[0].self_attn
    params = sum(p.numel() for p in model.parameters())
    first, second = LeanCache(model), LeanCache(model)
    projection = first.parts[0].qkv
    assert projection is not None and second.parts[0].qkv is not None
    weight, bias = projection.weight, projection.bias
    assert second.parts[0].qkv.weight is weight  # fused once per model
    assert attn.q_proj.weight.data_ptr() == weight.data_ptr()
    assert attn.v_proj.weight.data_ptr() > attn.k_proj.weight.data_ptr()
    assert bias is not None and attn.k_proj.bias.data_ptr() > bias.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == params
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, before)
        fed = first.forward(ids[0].tolist(), keep_logits=5)
    torch.testing.assert_close(fed, before[0], rtol=0, atol=1e-5)


def test_verify_rows_are_computed_only_when_read(models):
    model = models["qwen2"]
    ids = list(range(3, 50))
    hf, lean = PrefixCache(model), LeanCache(model)
    head_calls: list[int] = []
    head = lean._head

    def counting_head(hidden):
        head_calls.append(hidden.shape[0])
        return head(hidden)

    lean._head = counting_head
    with torch.inference_mode():
        hf.forward(ids[:40])
        lean.forward(ids[:40])
        want = hf.forward_rows(ids[40:47], 7)
        head_calls.clear()
        rows = lean.forward_rows(ids[40:47], 7)
        assert len(rows) == 7 and head_calls == []
        for i in (0, 3, 0):
            torch.testing.assert_close(rows[i], want[i], rtol=0, atol=1e-5)
    assert head_calls == [1, 1]  # two positions read, each computed once


def test_rms_norm_shortcut_is_bit_identical_and_only_for_float32(models):
    norm = models["qwen2"].model.layers[0].input_layernorm
    x = torch.randn(1, 9, norm.weight.shape[0])
    with torch.inference_mode():
        assert torch.equal(leanforward._rms_norm(norm, torch.float32)(x), norm(x))
    assert leanforward._rms_norm(norm, torch.bfloat16) is norm
