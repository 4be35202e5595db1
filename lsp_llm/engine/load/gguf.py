"""GGUF files as models: converted once into a safetensors folder in the user's cache,
so every later start is a plain, fast `from_pretrained` of that folder.

transformers reads GGUF itself (tokenizer and dequantized weights) but refuses to save a
model it loaded that way, so the weights are moved into a model built from the same config
and saved from there. The cache folder is keyed by the file's SHA-256; a small index keyed
by path, size and modification time spares re-hashing a multi-GB file on every start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsp_llm.engine.cachedir import cache_root
from lsp_llm.generation.backend import Progress

logger = logging.getLogger(__name__)

DONE_MARK = "lsp-llm-gguf.json"
"""Written last into a converted folder: its presence means the conversion finished."""


class GgufError(Exception):
    """A GGUF file could not be converted; the message says why."""


def file_digest(path: Path, index: Path) -> str:
    """The SHA-256 of `path`, remembered in `index` under its path, size and mtime."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        known: dict[str, str] = json.loads(index.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), str):
        return known[key]
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    digest = h.hexdigest()
    known = {k: v for k, v in known.items() if not k.startswith(f"{path.resolve()}|")}
    known[key] = digest
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        index.write_text(json.dumps(known, indent=1))
    except OSError:
        logger.debug("could not write %s", index, exc_info=True)
    return digest


def architecture(path: Path) -> str:
    """`general.architecture` from the GGUF header (memory-mapped, nothing dequantized)."""
    from lsp_llm.engine.load.ggufmap import GgufFormatError, GgufMap

    try:
        found = GgufMap(path).string("general.architecture")
    except (OSError, GgufFormatError) as exc:
        raise GgufError(f"{path} is not a readable GGUF file: {exc}") from exc
    if found is None:
        raise GgufError(f"{path} is not a readable GGUF file: it names no architecture")
    return found


def supported_architectures() -> list[str]:
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    return sorted(GGUF_SUPPORTED_ARCHITECTURES)


def readable_architecture(path: Path) -> str:
    """The file's architecture, when transformers reads it (its tokenizer and config, and
    its weights for a conversion); else a `GgufError` naming those it reads."""
    arch = architecture(path)
    supported = supported_architectures()
    if not any(arch == a or arch.replace("-", "_") == a for a in supported):
        raise GgufError(
            f"{path.name}: GGUF architecture {arch!r} cannot be loaded by transformers "
            f"(it reads {', '.join(supported)}); use a model of one of those, or its "
            "Hugging Face folder"
        )
    return arch


def converted_folder(path: Path, progress: Progress, cache_dir: Path | None = None) -> Path:
    """The safetensors folder for GGUF file `path`, converting it on first use."""
    root = cache_dir or cache_root()
    progress(0.02, f"checking {path.name}")
    digest = file_digest(path, root / "gguf" / "index.json")
    folder = root / "gguf" / digest[:24]
    if (folder / DONE_MARK).exists():
        return folder
    arch = readable_architecture(path)
    mark: dict[str, str | bool] = {"gguf": str(path), "sha256": digest, "architecture": arch}
    return _publish(folder, lambda staging: _convert(path, staging, progress), mark)


def _publish(folder: Path, make: Callable[[Path], None], mark: dict[str, str | bool]) -> Path:
    """`folder`, made by `make` in a staging folder beside it, marked done with `mark` and
    renamed into place (so a folder without its mark is never used)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name[:12]}-", dir=folder.parent))
    try:
        make(staging)
        (staging / DONE_MARK).write_text(json.dumps(mark, indent=1))
        if folder.exists():  # an unfinished earlier try
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def described_folder(path: Path, progress: Progress, cache_dir: Path | None = None) -> Path:
    """A folder with the config and tokenizer of GGUF file `path` and no weights (what
    serving the file from its blocks needs besides the file), made on first use: a few MB
    against the float32 copy `converted_folder` writes. A finished conversion serves too."""
    root = cache_root() if cache_dir is None else cache_dir
    progress(0.02, f"checking {path.name}")
    digest = file_digest(path, root / "gguf" / "index.json")
    converted = root / "gguf" / digest[:24]
    if (converted / DONE_MARK).exists():
        return converted
    folder = root / "gguf" / f"{digest[:24]}-described"
    if (folder / DONE_MARK).exists():
        return folder
    arch = readable_architecture(path)
    mark: dict[str, str | bool] = {"gguf": str(path), "sha256": digest, "architecture": arch}
    mark["weights"] = False
    return _publish(folder, lambda staging: _describe(path, staging, progress), mark)


def _describe(path: Path, out: Path, progress: Progress) -> None:
    from transformers import AutoConfig, AutoTokenizer

    where, name = str(path.parent), path.name
    progress(0.05, f"reading {name}'s tokenizer and config (first use only)")
    try:
        AutoTokenizer.from_pretrained(where, gguf_file=name).save_pretrained(out)
        config = AutoConfig.from_pretrained(where, gguf_file=name).to_dict()
    except Exception as exc:
        raise GgufError(f"transformers could not read {name}: {type(exc).__name__}: {exc}") from exc
    config.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(config, indent=1))


def _convert(path: Path, out: Path, progress: Progress) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where, name = str(path.parent), path.name
    try:
        progress(0.05, f"converting {name}: reading its tokenizer (first use only)")
        tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
        progress(0.2, f"converting {name}: dequantizing its weights")
        model: Any = AutoModelForCausalLM.from_pretrained(
            where, gguf_file=name, dtype=torch.float32
        )
    except Exception as exc:
        raise GgufError(f"transformers could not read {name}: {type(exc).__name__}: {exc}") from exc
    progress(0.4, f"converting {name}: saving safetensors to {out.parent}")
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    plain = AutoModelForCausalLM.from_config(type(model.config).from_dict(config))
    plain.load_state_dict(model.state_dict())
    plain.to(torch.float32).save_pretrained(out)
    tokenizer.save_pretrained(out)
