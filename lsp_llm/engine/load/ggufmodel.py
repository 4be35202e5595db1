"""A GGUF file served as it is on a CPU: a transformers Qwen2/Llama model built without
weights, whose linear layers, embedding and output head read the memory-mapped file's
blocks (`ggufmap.py`, `ggufblocks.py`) and whose norms and biases are the file's float32
vectors. The lean forward (`leanforward.py`) runs it; every pass, prompts included, goes
through the project's native layers (`nativelayers.py`).

Nothing is written to disk but the small folder of config and tokenizer that
`gguf.described_folder` makes once, and nothing is dequantized in memory beyond a pass's
activations and the embedding rows it reads. Models this cannot take (another
architecture, a format the kernels do not read, no native kernels) are converted to float32
by `gguf.converted_folder` instead, as before; `unsupported` says why.
"""

from __future__ import annotations

from typing import Any

import torch

from lsp_llm.engine.cpu import native as native_kernels
from lsp_llm.engine.cpu.ggufblocks import F32, FORMATS, BlockEmbedding, BlockLinear, format_name
from lsp_llm.engine.load.ggufmap import GgufFormatError, GgufMap

ARCHITECTURES = frozenset({"qwen2", "llama"})
LAYER_MATRICES = {
    "attn_q": ("self_attn", "q_proj"),
    "attn_k": ("self_attn", "k_proj"),
    "attn_v": ("self_attn", "v_proj"),
    "attn_output": ("self_attn", "o_proj"),
    "ffn_gate": ("mlp", "gate_proj"),
    "ffn_up": ("mlp", "up_proj"),
    "ffn_down": ("mlp", "down_proj"),
}
"""GGUF's names for a layer's matrices, and where transformers keeps them."""


class GgufModelError(Exception):
    """The file cannot be served from its blocks; the message says why."""


def unsupported(mapped: GgufMap) -> str | None:
    """Why `mapped` cannot be served from its blocks here, or None when it can."""
    if native_kernels.kernel() is None:
        return "the project's native kernels do not run on this machine"
    arch = mapped.string("general.architecture")
    if arch not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        return f"architecture {arch!r} is not one the native layers run ({known})"
    rope = mapped.string(f"{arch}.rope.scaling.type")
    if rope not in (None, "none"):
        return f"rope scaling {rope!r} is not supported by the native layers"
    for info in mapped.tensors.values():
        if info.kind not in FORMATS:
            return (
                f"tensor {info.name} is {format_name(info.kind)}, a format the kernels do not read"
            )
    return None


def _float_vector(mapped: GgufMap, name: str) -> torch.Tensor:
    info = mapped.tensors[name]
    if info.kind != F32:
        raise GgufModelError(f"{name} is {format_name(info.kind)}; a float32 vector was expected")
    return mapped.tensor(name, info.shape[0] * 4).view(torch.float32).reshape(-1).clone()


def _matrix(
    mapped: GgufMap, name: str, kernel: native_kernels.Kernel, bias: str | None = None
) -> BlockLinear:
    info = mapped.tensors[name]
    inputs = info.shape[0]
    row_bytes = kernel.row_bytes(info.kind, inputs)
    if row_bytes < 0:
        raise GgufModelError(f"{name}: {format_name(info.kind)} rows of {inputs} cannot be read")
    vector = _float_vector(mapped, bias) if bias is not None and bias in mapped.tensors else None
    return BlockLinear(mapped.tensor(name, row_bytes), info.kind, inputs, vector, kernel)


def _unpermute(layer: BlockLinear, heads: int) -> BlockLinear:
    """Undo llama.cpp's converter's row permutation of a Llama query or key projection (it
    interleaves each head's two rotary halves): rows are moved, not recomputed, so this
    loses nothing. Only these two matrices are copied out of the mapping."""
    rows = layer.out_features
    dim = rows // heads // 2
    order = torch.arange(rows).view(heads, dim, 2).transpose(1, 2).reshape(-1)
    moved = layer.rows.index_select(0, order)
    bias = None if layer.bias is None else layer.bias.index_select(0, order)
    return BlockLinear(moved, layer.fmt, layer.in_features, bias, layer.kernel)


def load_gguf_model(mapped: GgufMap, described: str) -> Any:
    """The model in the mapped GGUF file, served from its blocks; `described` is its folder
    of config and tokenizer. The model keeps the mapping alive."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kernel = native_kernels.kernel()
    path = mapped.path
    why = unsupported(mapped)
    if why is not None or kernel is None:
        raise GgufModelError(f"{path.name}: {why}")
    arch = mapped.string("general.architecture")
    config = AutoConfig.from_pretrained(described)
    config.tie_word_embeddings = "output.weight" not in mapped.tensors
    with torch.device("meta"):
        model: Any = AutoModelForCausalLM.from_config(config)
    inner = model.model
    try:
        for i, layer in enumerate(inner.layers):
            prefix = f"blk.{i}"
            for gguf_name, (owner, attr) in LAYER_MATRICES.items():
                name = f"{prefix}.{gguf_name}.weight"
                bias = f"{prefix}.{gguf_name}.bias"
                setattr(getattr(layer, owner), attr, _matrix(mapped, name, kernel, bias))
            if arch == "llama":
                attn = layer.self_attn
                attn.q_proj = _unpermute(attn.q_proj, config.num_attention_heads)
                attn.k_proj = _unpermute(attn.k_proj, config.num_key_value_heads)
            for module, gguf_name in (
                (layer.input_layernorm, "attn_norm"),
                (layer.post_attention_layernorm, "ffn_norm"),
            ):
                weight = _float_vector(mapped, f"{prefix}.{gguf_name}.weight")
                module.weight = torch.nn.Parameter(weight, requires_grad=False)
        embedding = mapped.tensors["token_embd.weight"]
        dim = embedding.shape[0]
        rows = mapped.tensor("token_embd.weight", kernel.row_bytes(embedding.kind, dim))
        inner.embed_tokens = BlockEmbedding(rows, embedding.kind, dim, kernel)
        head = "output.weight" if "output.weight" in mapped.tensors else "token_embd.weight"
        model.lm_head = _matrix(mapped, head, kernel)
        norm = _float_vector(mapped, "output_norm.weight")
        inner.norm.weight = torch.nn.Parameter(norm, requires_grad=False)
    except (KeyError, ValueError, GgufFormatError) as exc:
        raise GgufModelError(f"{path.name}: {type(exc).__name__}: {exc}") from exc
    with torch.device("cpu"):
        inner.rotary_emb = type(inner.rotary_emb)(config=model.config)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise GgufModelError(f"{path.name}: no weights in the file for {', '.join(left[:5])}")
    model.eval()
    model._lsp_llm_gguf = mapped  # the views point into it
    return model


def file_formats(mapped: GgufMap) -> str:
    """The quantized formats of the file's matrices, most common first ("Q5_0, Q8_0, ...")."""
    counts: dict[str, int] = {}
    for info in mapped.tensors.values():
        if info.kind != F32:
            counts[format_name(info.kind)] = counts.get(format_name(info.kind), 0) + 1
    return ", ".join(sorted(counts, key=lambda k: -counts[k]))
