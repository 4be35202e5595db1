"""Random-weight models of the Qwen2.5-Coder shapes, for timing where the real weights
cannot go (a GPU machine reached through a 64 MiB transfer): the configs of the 0.5B and the
1.5B (read from their GGUF files: layers, widths, heads, the 151,936-token vocabulary, an
output head of its own beside the embedding), random weights, and the bundled model's
tokenizer.

The time of a pass depends on the shapes, not on the values, except where the values
decide what is generated. So the output head keeps random rows only
for the tokens the bundled tokenizer has and that hold no line break; every other row is
zero. Greedy decoding then picks a token that decodes to text on one line, and an inline
suggestion runs to its token budget instead of stopping at a random line end or end token.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsp_llm.engine.load.bundled import bundled_model_dir
from lsp_llm.engine.load.catalogue import QWEN_05B, QWEN_15B


@dataclass(frozen=True)
class Shape:
    """The dimensions of one model."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int = 151_936
    context: int = 32_768
    rope_theta: float = 1_000_000.0
    tied: bool = False
    """The output head is the embedding (Qwen's safetensors releases) rather than a
    matrix of its own (the catalogue's GGUF files)."""


SHAPES = {
    QWEN_05B: Shape(layers=24, hidden=896, intermediate=4864, heads=14, kv_heads=2),
    QWEN_15B: Shape(layers=28, hidden=1536, intermediate=8960, heads=12, kv_heads=2),
}
"""As the catalogue's GGUF files declare them (`tests/test_shapes.py` checks the installed
ones)."""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def config_of(shape: Shape, eos: int, pad: int) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=shape.vocab,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.context,
        rope_parameters={"rope_theta": shape.rope_theta, "rope_type": "default"},
        rms_norm_eps=1e-6,
        tie_word_embeddings=shape.tied,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
    )


def build_shape_model(shape: Shape, folder: Path, device: str = "cpu", seed: int = 0) -> Path:
    """Write a random-weight model of `shape` (bfloat16 on CUDA, float32 on a CPU) with the
    bundled tokenizer to `folder`, which a `model` setting then names like any other."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = bundled_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(source)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(seed)
    with torch.device(device):
        config = config_of(shape, tokenizer.eos_token_id, tokenizer.pad_token_id)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    with torch.no_grad():
        table = model.get_output_embeddings().weight
        keep = torch.zeros(table.shape[0], dtype=torch.bool, device=table.device)
        for token, index in tokenizer.get_vocab().items():
            text = tokenizer.convert_tokens_to_string([token])
            special = token in tokenizer.all_special_tokens or token.startswith("<|")
            if index < shape.vocab and not special and "\n" not in text and text.strip():
                keep[index] = True
        table[~keep] = 0
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    del model
    return folder
