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


ENDLESS_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
"""What the endless model types, in a cycle: 40 characters, longer than any piece the
in-line loop rule looks for (`generation.stopping.CYCLE_PIECE_CHARS`)."""


def build_endless_model(source: Path, folder: Path, letters: str = ENDLESS_LETTERS) -> Path:
    """Save a copy of the model in `source` whose greedy output is `letters` in a cycle,
    forever: no end token, no newline, and no piece of text repeated within a line's reach,
    so neither an end token nor a stop rule (dedent, blank lines, end of line, a loop
    inside a line) ever ends a generation; it runs until it is cancelled or reaches its
    token limit, whatever the machine's arithmetic.

    Every layer's attention and MLP output projections are zeroed, so the last position's
    state is its token's embedding: letter k has a one in dimension k, every other token a
    one in dimension `len(letters)`. The (untied) output head maps dimension k to the next
    letter and that last dimension to the first letter, with the same weight: the chosen
    letter's logit is positive and every other token's is 0 (no tie)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    ids = [tokenizer.convert_tokens_to_ids(c) for c in letters]
    hidden = model.config.hidden_size
    if len(set(ids)) != len(letters) or tokenizer.unk_token_id in ids or len(letters) >= hidden:
        raise ValueError("build_endless_model needs one token per letter, fewer than the width")
    model.config.tie_word_embeddings = False
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.norm.weight.fill_(1.0)
        rows = model.get_input_embeddings().weight
        rows.zero_()
        rows[:, len(letters)] = 1.0
        head = torch.zeros_like(rows)
        for k, token in enumerate(ids):
            rows[token, len(letters)] = 0.0
            rows[token, k] = 1.0
            head[ids[(k + 1) % len(letters)], k] = 1.0
        head[ids[0], len(letters)] = 1.0
        model.lm_head = torch.nn.Linear(hidden, rows.shape[0], bias=False)
        model.lm_head.weight.copy_(head)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
