"""GGUF models and model settings: `smollm2` from its package, converted once into the
cache; `.gguf` files, folders holding one and `org/repo:FILE.gguf`; clear errors for what
cannot be loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.load.gguf import DONE_MARK, converted_folder
from lsp_llm.engine.load.loading import ModelLoadError, load
from lsp_llm.engine.load.sources import (
    SourceError,
    default_model,
    locate_gguf,
    resolve_source,
    smollm2_gguf,
)


def write_gguf(path: Path, arch: str) -> Path:
    """A small but well-formed GGUF file of architecture `arch`."""
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_an_architecture_transformers_cannot_read_is_named(tmp_path):
    gguf = write_gguf(tmp_path / "odd.gguf", "mamba9")
    with pytest.raises(ModelLoadError) as err:
        load(Settings(model=str(gguf)))
    message = str(err.value)
    assert "'mamba9'" in message and "cannot be loaded by transformers" in message
    assert "llama" in message  # the architectures it can read are listed


def test_model_settings_that_name_no_loadable_gguf(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        locate_gguf(str(tmp_path / "missing.gguf"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match=r"not a \.gguf"):
        locate_gguf(str(tmp_path / "notes.txt"))
    two = tmp_path / "two"
    two.mkdir()
    write_gguf(two / "a.gguf", "llama")
    write_gguf(two / "b.gguf", "llama")
    with pytest.raises(SourceError, match="several GGUF files"):
        locate_gguf(str(two))
    one = tmp_path / "one"
    one.mkdir()
    assert locate_gguf(str(write_gguf(one / "m.gguf", "llama"))) == one / "m.gguf"
    assert locate_gguf(str(one)) == one / "m.gguf"
    # a hub file that is not in the cache, offline (HF_HUB_OFFLINE=1 in the tests)
    with pytest.raises(SourceError, match="not in the Hugging Face cache"):
        locate_gguf("nobody/no-such-repo:model.Q4_0.gguf")
    # plain hub ids and folders with a config.json are not GGUF
    assert locate_gguf("Qwen/Qwen2.5-Coder-1.5B-Instruct") is None


def test_a_broken_gguf_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(ModelLoadError, match="not a readable GGUF file"):
        load(Settings(model=str(bad)))


def test_smollm2_converts_once(smollm2_folder):
    assert (smollm2_folder / DONE_MARK).exists()
    assert (smollm2_folder / "model.safetensors").exists()
    heard: list[str] = []
    source = resolve_source("smollm2", lambda fraction, message: heard.append(message))
    assert source.name == "smollm2" and Path(source.folder) == smollm2_folder
    assert source.gguf == smollm2_gguf() and not source.demo
    assert not any("converting" in m for m in heard)  # the cached folder is used as it is
    gguf = smollm2_gguf()
    assert gguf is not None
    assert converted_folder(gguf, lambda f, m: None) == smollm2_folder


def test_smollm2_loads_as_a_llama_model_with_its_chat_template(smollm2_float):
    smollm2 = smollm2_float
    assert smollm2.name == "smollm2" and smollm2.draft_name == "smollm2-draft" and not smollm2.demo
    assert type(smollm2.model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in smollm2.model.parameters()) == 134_515_008
    assert smollm2.context_window == 8192
    assert smollm2.tokenizer.chat_template and "<|im_start|>" in smollm2.tokenizer.get_vocab()
    assert smollm2.notice is None  # the user chose it: nothing to announce


def test_what_the_user_is_told_about_the_default_model(smollm2_folder):
    from lsp_llm.engine.load.loading import default_notice
    from lsp_llm.engine.load.sources import Source, default_choice

    told = default_notice(resolve_source(None, lambda f, m: None))
    choice = default_choice()
    assert choice.why in told and default_model() == choice.alias
    smol = default_notice(Source("smollm2", "x", why="no Qwen2.5-Coder model is installed"))
    assert "SmolLM2-135M-Instruct (from its packages, hash checked)" in smol
    assert "no Qwen2.5-Coder model is installed" in smol
    bundled = default_notice(Source("bundled", "x", demo=True, why="no model is installed"))
    assert "demo" in bundled and "no model is installed" in bundled
