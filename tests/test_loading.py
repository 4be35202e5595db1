"""Model loading: clear errors for what users get wrong, and quantized loading on the CPU."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from lsp_llm.config import CompletionSettings, Settings
from lsp_llm.engine.load.loading import (
    ModelLoadError,
    _load_one,
    choose_quantization,
    load,
    trained_on_spm,
)


def test_unknown_model_offline_names_model_and_offline_mode():
    with pytest.raises(ModelLoadError) as err:
        load(Settings(model="nobody/no-such-model-xyz"))
    message = str(err.value)
    assert "nobody/no-such-model-xyz" in message
    assert "HF_HUB_OFFLINE" in message
    assert "Traceback" not in message


def test_incompatible_draft_is_reported_and_target_still_serves(tiny):
    progress: list[tuple[float, str]] = []
    loaded = load(
        Settings(model=str(tiny.target), draft_model=str(tiny.other_tokenizer)),
        lambda f, m: progress.append((f, m)),
    )
    assert loaded.draft_model is None
    assert any("does not share the tokenizer" in w for w in loaded.warnings)
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_missing_draft_is_a_warning(tiny):
    loaded = load(Settings(model=str(tiny.target), draft_model="nobody/missing-draft"))
    assert loaded.draft_model is None
    assert any("nobody/missing-draft" in w for w in loaded.warnings)


def test_pickle_weights_refused_unless_opted_in(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny.target)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    AutoTokenizer.from_pretrained(tiny.target).save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))
    with pytest.raises(ModelLoadError, match="allowPickleWeights"):
        load(Settings(model=str(tmp_path)))
    assert load(Settings(model=str(tmp_path), allow_pickle_weights=True)).model is not None


def test_missing_bitsandbytes_is_explained(tiny, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "bitsandbytes" else real(name, *a),
    )
    with pytest.raises(ModelLoadError, match="needs bitsandbytes"):
        _load_one(str(tiny.target), Settings(), "cpu", torch.float32, "4bit", "model")


def test_cuda_requested_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="CUDA is not available"):
        load(Settings(model="anything", device="cuda"))


def test_auto_quantization_takes_widest_precision_that_fits():
    gib = 1024**3
    assert choose_quantization(1_500_000_000, 20 * gib, 2 * gib) == "none"
    assert choose_quantization(7_000_000_000, 12 * gib, 2 * gib) == "8bit"
    assert choose_quantization(7_000_000_000, 8 * gib, 2 * gib) == "4bit"


def test_cpu_defaults(tiny):
    loaded = load(Settings(model=str(tiny.target)))
    assert (loaded.device, loaded.dtype, loaded.quantization) == ("cpu", "float32", "none")
    assert loaded.tokenizer.pad_token_id is not None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, False),  # a hub model: no training record
        ('{"fim_spm_rate": 0.5}', True),
        ('{"fim_spm_rate": 0}', False),
        ('{"seed": 1}', False),  # a record from before SPM training
        ("not json", False),
        ("[1, 2]", False),
    ],
)
def test_spm_training_is_read_from_the_models_training_record(tmp_path, record, expected):
    if record is not None:
        (tmp_path / "training.json").write_text(record)
    assert trained_on_spm(str(tmp_path)) is expected
    assert trained_on_spm("Qwen/Qwen2.5-Coder-1.5B") is False  # a hub id, not a folder


def test_a_model_folder_trained_on_spm_is_served_in_spm_order(tiny, tmp_path):
    """`fimOrder: auto` follows the folder's training record through load and the prompt."""
    import shutil

    from lsp_llm.context.completion import plan_completion
    from lsp_llm.context.prompts import EditorContext
    from lsp_llm.generation.tokens import TokenizerInfo

    folder = tmp_path / "model"
    shutil.copytree(tiny.target, folder)
    (folder / "training.json").write_text('{"fim_spm_rate": 0.5}')
    loaded = load(Settings(model=str(folder)))
    assert loaded.trained_spm
    info = TokenizerInfo.of(loaded)
    ctx = EditorContext("def f(x):\n    return x\n", len("def f(x):\n    return "))
    pre, suf, mid = info.fim
    served = plan_completion(info, ctx, Settings()).prompt.token_ids
    assert served[:2] == (pre, suf) and served[-1] != mid
    psm = Settings(completion=CompletionSettings(fim_order="psm"))
    assert plan_completion(info, ctx, psm).prompt.token_ids[-1] == mid
    assert not load(Settings(model=str(tiny.target))).trained_spm
