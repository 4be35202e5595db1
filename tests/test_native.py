"""The project's int4 CPU kernel (`native_kernels.py`): built with the system's compiler, the
products it computes, the operator a compiled graph calls, and torch's kernel where it
cannot run."""

from __future__ import annotations

import pytest
import torch

from lsp_llm.engine.cpu import native as native_kernels
from lsp_llm.engine.cpu import packedweights as packedweights


@pytest.mark.parametrize(("out", "inp"), [(96, 64), (960, 576), (576, 1536), (7, 32)])
@pytest.mark.parametrize("rows", [1, 3, 16])
def test_products_are_the_int4_weights_times_the_activations(kernel, out, inp, rows):
    torch.manual_seed(out + rows)
    weight = torch.randn(out, inp) * 0.05
    blocks = native_kernels.Q4Blocks(weight, kernel)
    x = torch.randn(rows, inp)
    y = blocks(x)
    assert y.shape == (rows, out) and y.dtype == torch.float32
    # the activations are held as two int8 parts per block (about 15 bits): the product is
    # the int4 weights' to within float32 summation and that rounding
    exact = x.double() @ blocks.dequantized().double().T
    assert (y.double() - exact).norm() / exact.norm() < 1e-4
    # and close to the float weights' product (int4's own error)
    ref = x @ weight.T
    assert (y - ref).norm() / ref.norm() < 0.15


def test_weights_already_on_the_q4_1_grid_are_kept_exactly(kernel):
    """SmolLM2's weights come from a Q4_1 GGUF: packing them again loses nothing."""
    torch.manual_seed(0)
    d = (torch.rand(40, 6) * 0.01 + 1e-3).half().float()
    m = (-torch.rand(40, 6) * 0.05).half().float()
    q = torch.randint(0, 16, (40, 6, 32)).float()
    q[..., 0], q[..., 1] = 0, 15  # each block spans the whole range, as Q4_1's do
    weight = (q * d[..., None] + m[..., None]).reshape(40, 192)
    blocks = native_kernels.Q4Blocks(weight, kernel)
    torch.testing.assert_close(blocks.dequantized(), weight, rtol=0, atol=1e-6)


def test_refuses_what_it_cannot_multiply(kernel):
    blocks = native_kernels.Q4Blocks(torch.randn(8, 64), kernel)
    with pytest.raises(ValueError, match="refused"):
        kernel.linear(torch.randn(native_kernels.MAX_KERNEL_ROWS + 1, 64), blocks.blocks)
    with pytest.raises(ValueError, match="blocks of 32"):
        native_kernels.Q4Blocks(torch.randn(8, 48), kernel)


def test_a_compiled_graph_calls_it_as_an_operator(kernel):
    torch.manual_seed(1)
    blocks = native_kernels.Q4Blocks(torch.randn(64, 128), kernel)
    x = torch.randn(2, 128)
    compiled = torch.compile(lambda v: blocks(v) * 2, fullgraph=True)
    torch.testing.assert_close(compiled(x), blocks(x) * 2)
    torch.testing.assert_close(torch.ops.lsp_llm.q4_linear(x, blocks.blocks), blocks(x))


def test_int4_packs_with_it_and_falls_back_to_torch(kernel):
    weight = torch.randn(32, 64)
    assert isinstance(packedweights.pack(weight, "int4"), native_kernels.Q4Blocks)
    assert isinstance(packedweights.pack(weight, "int4", native=False), packedweights.Int4Groups)


def test_a_build_that_fails_leaves_torch_s_kernel(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(native_kernels, "_state", {})
    monkeypatch.setenv("LSP_LLM_CACHE_DIR", str(tmp_path))  # nothing built there yet
    monkeypatch.setattr(native_kernels, "cxx_compiler", lambda: "false")  # exits 1
    monkeypatch.setattr(native_kernels, "_cpu_has", lambda flags: True)
    assert native_kernels.kernel() is None
    assert "native kernels unavailable" in caplog.text
    assert isinstance(packedweights.pack(torch.randn(32, 64), "int4"), packedweights.Int4Groups)
    monkeypatch.setattr(native_kernels, "_state", {})
    monkeypatch.setattr(native_kernels, "cxx_compiler", lambda: None)
    assert native_kernels.kernel() is None


def test_the_lean_forward_decodes_with_it(kernel, tiny):
    """On weights that are on the int4 grid already (as SmolLM2's), a pass through the
    kernel is the float pass to about 15 bits: the same greedy tokens."""
    from transformers import AutoModelForCausalLM

    from lsp_llm.engine.leanforward import LeanCache

    model = AutoModelForCausalLM.from_pretrained(tiny.target).eval()
    with torch.no_grad():
        for module in model.modules():
            if type(module) is torch.nn.Linear:
                module.weight.copy_(native_kernels.Q4Blocks(module.weight, kernel).dequantized())
    native, exact = LeanCache(model, "int4"), LeanCache(model)
    assert isinstance(native.parts[0].qkv.packed, native_kernels.Q4Blocks)
    with torch.inference_mode():
        for cache in (native, exact):
            cache.forward(list(range(5, 45)))
        for token in (7, 300, 11, 900):
            got, want = native.forward([token])[0], exact.forward([token])[0]
            assert int(got.argmax()) == int(want.argmax())
            assert (got - want).abs().max() < 1e-3 * want.abs().max()


@pytest.mark.parametrize(
    ("heads", "kv_heads", "dim", "length"),
    [(9, 3, 64, 1), (9, 3, 64, 700), (4, 4, 128, 33), (8, 2, 16, 5)],
)
def test_attention_of_one_token_is_pytorch_s(kernel, heads, kv_heads, dim, length):
    torch.manual_seed(length)
    capacity = length + 7
    keys = torch.randn(1, kv_heads, capacity, dim)
    values = torch.randn(1, kv_heads, capacity, dim)
    keys[:, :, length:] = float("nan")  # past the length: never read
    q = torch.randn(1, heads, 1, dim)
    got = kernel.attend(q, keys, values, length, dim**-0.5)
    want = torch.nn.functional.scaled_dot_product_attention(
        q,
        keys[:, :, :length],
        values[:, :, :length],
        scale=dim**-0.5,
        enable_gqa=heads != kv_heads,
    )
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_attention_refuses_what_it_cannot_read(kernel):
    keys = torch.randn(1, 2, 8, 64)
    q = torch.randn(1, 4, 1, 64)
    with pytest.raises(ValueError, match="refused"):
        kernel.attend(q, keys, keys, 9, 0.125)  # past the capacity
    with pytest.raises(ValueError, match="float32"):
        kernel.attend(q, keys.half(), keys.half(), 4, 0.125)
    assert not kernel.attends(6, 4, 64) and not kernel.attends(4, 2, 60)
    assert kernel.attends(9, 3, 64)


def test_eager_decoding_steps_attend_with_it(kernel, loaded, monkeypatch):
    from lsp_llm.engine.leanforward import LeanCache

    ours, theirs = LeanCache(loaded.model), LeanCache(loaded.model, native=False)
    assert ours.attention_kernel is kernel and theirs.attention_kernel is None
    calls = []
    attend = kernel.attend
    monkeypatch.setattr(kernel, "attend", lambda *a: calls.append(a[3]) or attend(*a))
    with torch.inference_mode():
        for cache in (ours, theirs):
            cache.forward(list(range(5, 45)))
        assert not calls  # a prompt is read by PyTorch's attention
        for token in (7, 300, 11):
            torch.testing.assert_close(
                ours.forward([token]), theirs.forward([token]), rtol=1e-5, atol=1e-5
            )
    assert calls == [n for n in (41, 42, 43) for _layer in ours.layers]  # each layer's


def _on_the_grid(model, kernel):
    """`model` with every linear weight replaced by its int4 blocks' value (as SmolLM2's
    come from a Q4_1 GGUF): the int4 and float passes then differ only by rounding."""
    with torch.no_grad():
        for module in model.modules():
            if type(module) is torch.nn.Linear:
                module.weight.copy_(native_kernels.Q4Blocks(module.weight, kernel).dequantized())
    return model


@pytest.fixture(scope="module")
def grid_models(kernel, tiny):
    from transformers import AutoModelForCausalLM

    from lsp_llm.train.tiny import tiny_llama

    qwen = AutoModelForCausalLM.from_pretrained(tiny.target).eval()  # q/k/v biases
    llama = tiny_llama(qwen.config.vocab_size)  # no biases; 4 query heads on 1
    return {"qwen2": _on_the_grid(qwen, kernel), "llama": _on_the_grid(llama, kernel)}


def _torch_layers_twin(model):
    """A cache over `model` whose layers run as PyTorch operations (with the same int4
    products): what the lean forward did before `nativelayers.py`."""
    from lsp_llm.engine.leanforward import LeanCache

    twin = LeanCache(model, "int4")
    twin.native_layers = None
    twin.kv_dtype = torch.float32
    return twin


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_passes_over_a_few_tokens_run_every_layer_in_one_call(
    kernel, grid_models, arch, monkeypatch
):
    from lsp_llm.engine import leanforward as leanforward
    from lsp_llm.engine import nativelayers

    monkeypatch.setattr(leanforward, "INITIAL_CAPACITY", 16)  # the caches grow on the way
    model = grid_models[arch]
    # against the float pass: on grid weights it is exact, and the int4 products differ
    # from it only by the activations' rounding (to about 15 bits)
    ours, theirs = leanforward.LeanCache(model, "int4"), leanforward.LeanCache(model)
    assert isinstance(ours.native_layers, nativelayers.NativeLayers)
    calls = []
    run = nativelayers.NativeLayers.run
    monkeypatch.setattr(
        nativelayers.NativeLayers,
        "run",
        lambda self, x, *a: calls.append(len(x)) or run(self, x, *a),
    )
    ids = torch.randint(
        0, model.config.vocab_size, (80,), generator=torch.Generator().manual_seed(2)
    )
    ids = ids.tolist()
    steps = [
        ids[:5],
        ids[5:35],
        ids[35:38],
        None,
        ids[37:38],
        ids[38:54],
        *([t] for t in ids[54:60]),
    ]
    with torch.inference_mode():
        for step in steps:
            if step is None:  # a rejected draft token: back one position
                ours.crop(37)
                theirs.crop(37)
                continue
            got, want = ours.forward(step, len(step)), theirs.forward(step, len(step))
            assert (got - want).abs().max() < 1e-3 * want.abs().max()
            assert torch.equal(got.argmax(-1), want.argmax(-1))
        assert ours.tokens == theirs.tokens and ours.capacity == theirs.capacity == 64
        used = len(ours.tokens)
        assert ours.keys[0].dtype == ours.values[0].dtype == torch.float16  # as llama.cpp's
        for mine, other in zip(ours.keys + ours.values, theirs.keys + theirs.values, strict=True):
            # float16 keeps 11 bits: about 2e-3 at the cache's largest values
            torch.testing.assert_close(
                mine[:, :, :used].float(), other[:, :, :used], rtol=1e-3, atol=3e-3
            )
    # the prompt of 30 tokens went through PyTorch's layers (past 16 rows: float32 GEMMs)
    assert calls == [5, 3, 1, 16, 1, 1, 1, 1, 1, 1]


def test_the_call_refuses_what_does_not_fit_and_the_cache_starts_over(kernel, grid_models):
    from lsp_llm.engine.leanforward import LeanCache

    cache = LeanCache(grid_models["llama"], "int4")
    assert cache.native_layers is not None
    with torch.inference_mode():
        cache.forward(list(range(10)))
        x = torch.zeros(2, 64)
        with pytest.raises(ValueError, match="refused"):  # past the caches' capacity
            cache.native_layers.run(
                x, cache.capacity - 1, cache.cos, cache.sin, cache.keys, cache.values
            )


def test_only_int4_silu_models_in_eager_passes_take_it(kernel, grid_models, monkeypatch):
    from lsp_llm.engine.leanforward import LeanCache

    model = grid_models["qwen2"]
    assert LeanCache(model).native_layers is None  # float weights
    assert LeanCache(model, "int8").native_layers is None
    assert LeanCache(model, "int4", native=False).native_layers is None  # torch's int4
    compiled = LeanCache(model, "int4")
    compiled.compile_decode_step()
    assert compiled.native_layers is None
    monkeypatch.setattr(model.config, "hidden_act", "gelu")
    assert LeanCache(model, "int4").native_layers is None


def test_smollm2_decodes_the_same_through_it(kernel, smollm2_float):
    """The real model, 30 layers: the one-call layers against PyTorch's over the same int4
    products, greedy for 12 tokens after a code prompt."""
    from lsp_llm.engine.leanforward import LeanCache

    tokenizer, model = smollm2_float.tokenizer, smollm2_float.model
    ours, theirs = LeanCache(model, "int4"), _torch_layers_twin(model)
    assert ours.native_layers is not None
    prompt = tokenizer("def fibonacci(n):\n    if n < 2:\n        return n\n    return")[
        "input_ids"
    ]
    with torch.inference_mode():
        got, want = ours.forward(prompt), theirs.forward(prompt)
        for _ in range(12):
            assert (got - want).abs().max() < 1e-3 * want.abs().max()
            token = int(want[0].argmax())
            assert int(got[0].argmax()) == token
            got, want = ours.forward([token]), theirs.forward([token])
