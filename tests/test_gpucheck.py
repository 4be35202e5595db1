"""`scripts/gpu-check`'s parts that run on a CPU (as CI runs them): the Qwen2.5-Coder
shapes against the catalogue's files, random-weight models of them through the product's
loading, engine and server, the draft's pass costs, the CUDA tests' report, the Markdown."""

from __future__ import annotations

import json

import pytest

from lsp_llm.bench import gpucheck
from lsp_llm.bench.shapes import SHAPES, build_shape_model
from lsp_llm.engine.load import catalogue


@pytest.mark.parametrize("alias", sorted(SHAPES))
def test_the_shapes_are_the_catalogue_files(alias):
    from lsp_llm.engine.load.ggufmap import GgufMap

    known = catalogue.entry(alias)
    path = None if known is None else catalogue.installed_path(known)
    if path is None:
        pytest.skip(f"{alias} is not installed")
    mapped = GgufMap(path)
    shape = SHAPES[alias]
    assert mapped.number("qwen2.block_count") == shape.layers
    assert mapped.number("qwen2.embedding_length") == shape.hidden
    assert mapped.number("qwen2.feed_forward_length") == shape.intermediate
    assert mapped.number("qwen2.attention.head_count") == shape.heads
    assert mapped.number("qwen2.attention.head_count_kv") == shape.kv_heads
    assert mapped.tensors["token_embd.weight"].shape[1] == shape.vocab
    assert ("output.weight" not in mapped.tensors) == shape.tied


def test_a_shape_model_greedily_writes_one_line_text(tmp_path):
    """The head keeps only single-line tokens of the tokenizer: a suggestion runs to its
    budget instead of stopping at a random line end."""
    from dataclasses import replace

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shape = replace(SHAPES[catalogue.QWEN_05B], layers=1, vocab=9000)
    folder = build_shape_model(shape, tmp_path / "m")
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.hidden_size == 896 and not model.config.tie_word_embeddings
    ids = torch.tensor([tokenizer.encode("def main():\n    x = ")])
    out = model.generate(ids, max_new_tokens=24, do_sample=False)[0, ids.shape[1] :]
    assert len(out) == 24 and all(int(t) < len(tokenizer) for t in out)
    assert "\n" not in tokenizer.decode(out)


def test_the_cpu_parts_run_and_report(tmp_path):
    out = tmp_path / "report"
    args = ["--out", str(out), "--device", "cpu", "--layers", "1", "--vocab", "9000"]
    assert gpucheck.main([*args, "--prompt-tokens", "200", "--decode-tokens", "6"]) == 0
    report = json.loads((out / "gpu-check.json").read_text())
    assert report["machine"]["device"] == "cpu"
    tests = report["tests"]
    assert tests["tests"] >= 8 and tests["skipped"] == tests["tests"]  # no CUDA here
    assert tests["skip_reasons"] == ["no CUDA device"]
    for alias in SHAPES:
        rows = report["shapes"][alias]
        row = rows["bf16"]
        assert row["prompt_tokens"] == 200 and row["decoded"] == 6
        assert row["prompt_tok_s"] > 0 and row["decode_ms_per_token"] > 0
        assert len(row["served_ms"]) == 3 and max(row["served_chars"]) > 0
        assert "CUDA only" in rows["4bit"]["skipped"]
    costs = report["pass_costs"]
    assert costs["verify_over_step"] > 0 and costs["draft_over_target_step"] > 0
    assert "skipped" in report["cuda_graphs"] and "skipped" in report["parity"]
    md = (out / "gpu-check.md").read_text()
    assert "random weights" in md and "qwen2.5-coder-1.5b | bf16" in md
