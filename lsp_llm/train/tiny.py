"""Tiny random-weight Qwen2 models for tests and quick experiments (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def stdlib_sample(limit_bytes: int = 400_000) -> list[str]:
    """Python source text from the running interpreter's standard library."""
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = []
    total = 0
    for path in sorted(root.glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(text)
        total += len(text)
        if total >= limit_bytes:
            break
    return texts


def build_tiny_model(
    folder: Path,
    tokenizer: Any,
    *,
    hidden: int = 64,
    layers: int = 2,
    seed: int = 0,
    init_range: float = 0.02,
) -> Path:
    """Save a random Qwen2 model with `tokenizer` into `folder` (safetensors)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=init_range,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_llama(vocab: int, seed: int = 3) -> Any:
    """A random Llama model in memory, of the tiny Qwen2's size: no biases, four query
    heads reading one key/value head (the other architecture the lean forward covers)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=256,
        initializer_range=0.1,
    )
    return LlamaForCausalLM(config).eval()


def build_endless_model(source: Path, folder: Path, letters: str = "xy") -> Path:
    """Save a copy of the model in `source` whose greedy output is only the two `letters`,
    forever: no end token, no newline, so neither an end token nor a stop rule (dedent,
    blank lines, end of line) ever ends a generation; it runs until it is cancelled or
    reaches its token limit, whatever the machine's arithmetic.

    The final norm keeps one hidden dimension, and in the (tied) embeddings only the two
    letters have a component there, of opposite signs: their logits are +s and -s, every
    other token's 0, so one of the two always wins (a tie needs s exactly 0)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not model.config.tie_word_embeddings:
        raise ValueError("build_endless_model needs a model with tied embeddings")
    first, second = (tokenizer.convert_tokens_to_ids(c) for c in letters)
    with torch.no_grad():
        norm = model.model.norm.weight
        norm.zero_()
        norm[0] = 1.0
        rows = model.get_input_embeddings().weight
        rows[:, 0] = 0.0
        rows[first, 0] = 1.0
        rows[second, 0] = -1.0
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
