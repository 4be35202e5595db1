"""Model loading: an alias, Hugging Face id, local folder or GGUF file (`engine.load.sources`),
device/dtype/quantization choice, an optional draft model checked for tokenizer
compatibility, progress through a callback.

Every failure a user can cause (unknown or uncached model while offline, out of memory,
an incompatible draft, bitsandbytes missing) becomes a `ModelLoadError` with a message
meant for people, never a traceback.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lsp_llm.config import Settings
from lsp_llm.engine.load import catalogue
from lsp_llm.engine.load.draftvocab import VOCAB_FILE, DraftVocab, tokenizer_fingerprint
from lsp_llm.engine.load.gguf import GgufError
from lsp_llm.engine.load.sources import (
    AUTO,
    Source,
    SourceError,
    default_draft,
    resolve_source,
)
from lsp_llm.generation.backend import Progress
from lsp_llm.generation.tokens import Tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """A model could not be loaded; the message says why and what to do."""


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: Tokenizer
    name: str
    device: str
    dtype: str
    quantization: str
    draft_model: PreTrainedModel | None = None
    draft_name: str | None = None
    draft_vocab: DraftVocab | None = None
    """The draft's own smaller vocabulary, when it has one (`draftvocab.py`)."""
    is_moe: bool = False
    trained_spm: bool = False
    """The model's training record says it learned suffix-prefix-middle FIM order."""
    warnings: list[str] = field(default_factory=list)
    demo: bool = False
    """The bundled demo pair: works offline, but its suggestions are not useful."""
    notice: str | None = None
    """What the user should be told once the model is ready (which default was chosen)."""
    compile: bool = False
    """Compile the decoding step (`compiled.py`): asked for, and on a CPU."""

    @property
    def context_window(self) -> int | None:
        """The target's `max_position_embeddings`, when its config says."""
        value = getattr(self.model.config, "max_position_embeddings", None)
        return int(value) if isinstance(value, int) and value > 0 else None


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyper-threads of one core
    count once: a second thread on a core does not speed up matrix products)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def apply_threads(threads: int) -> int:
    """Set torch's CPU threads (`threads`, or the physical cores when 0); return them."""
    count = threads or physical_cores()
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count


def resolve_device(requested: str) -> str:
    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"device {requested!r} was asked for but CUDA is not available")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(requested: str, device: str) -> torch.dtype:
    if requested != "auto":
        dtype: torch.dtype = getattr(torch, requested)
        return dtype
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def choose_quantization(params: int, free_bytes: int, reserve_bytes: int) -> str:
    """Widest precision that fits: decoding is bandwidth-bound and 4-bit costs speed, so
    quantize only when 16-bit weights plus `reserve_bytes` (KV cache, activations) do not
    fit in `free_bytes`."""
    if params * 2 + reserve_bytes <= free_bytes:
        return "none"
    if params + reserve_bytes <= free_bytes:
        return "8bit"
    return "4bit"


CPU_AUTO_MIN_BYTES = 64 * 2**20
"""On a CPU, `quantization: auto` packs float weights of at least this size to int4: decoding
a model that size is bound by reading its weights, and int4 pays even through PyTorch's
kernels (docs/engine-decisions.md)."""

NATIVE_AUTO_MIN_BYTES = 16 * 2**20
"""Where the project's native kernels run, `auto` packs from this size on: with them the
bundled model (20 MB of float32) suggests faster in int4 and scores the same in the eval
(docs/engine-decisions.md). Without them (no AVX2 or no compiler) PyTorch's
int4 products are slower than float32 at that size, so it stays float32. Smaller models
(drafts, the tests' fixtures) stay float32: nothing was measured to gain there, and float32
keeps transformers' exact tokens."""


def auto_packs(size_bytes: int) -> bool:
    """Whether `quantization: auto` packs a model of `size_bytes` float weights to int4 on
    this CPU."""
    if size_bytes >= CPU_AUTO_MIN_BYTES:
        return True
    if size_bytes < NATIVE_AUTO_MIN_BYTES:
        return False
    from lsp_llm.engine.cpu import native

    return native.kernel() is not None


def cpu_quantization(requested: str, model: Any) -> tuple[str, str | None]:
    """The weight format (`none`, `8bit`, `4bit`) a model loaded on a CPU decodes with, and
    a warning when an explicit choice cannot be honoured. Packing happens when the decoder
    is built (`packedweights.py`); the float weights stay for passes that read a prompt."""
    from lsp_llm.engine.cpu.packedweights import cpu_weights, kernels_available
    from lsp_llm.engine.leanforward import lean_supported

    if requested == "none":
        return "none", None
    wanted = "4bit" if requested == "auto" else requested
    if not lean_supported(model):
        why = f"{type(model).__name__} is not a Qwen2/Llama decoder the lean forward runs"
    elif not kernels_available(cpu_weights(wanted)):
        why = f"this torch ({torch.__version__}) has no CPU kernel for it"
    else:
        if requested == "auto":
            size = sum(p.numel() * p.element_size() for p in model.parameters())
            return ("4bit" if auto_packs(size) else "none"), None
        return requested, None
    if requested == "auto":
        return "none", None
    return "none", f"quantization {requested!r} on the CPU is not available: {why}"


def resolve_quantization(requested: str, device: str, source: str, settings: Settings) -> str:
    """The bitsandbytes quantization to load with on CUDA (`none` on a CPU, where
    `cpu_quantization` decides after loading)."""
    if not device.startswith("cuda"):
        return "none"
    if requested != "auto":
        return requested
    try:
        params = _count_parameters(source, settings)
        free, _total = torch.cuda.mem_get_info(torch.device(device))
    except Exception:  # estimation is best effort; NF4 is the safe choice on CUDA
        logger.debug("could not estimate model size", exc_info=True)
        return "4bit"
    return choose_quantization(params, int(free * 0.9), reserve_bytes=2 * 1024**3)


def _count_parameters(source: str, settings: Settings) -> int:
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source, trust_remote_code=settings.trust_remote_code)
    with init_empty_weights():
        empty = AutoModelForCausalLM.from_config(
            config, trust_remote_code=settings.trust_remote_code
        )
    return sum(p.numel() for p in empty.parameters())


def _quantization_config(quantization: str, dtype: torch.dtype) -> Any:
    if quantization == "none":
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(
            f"quantization {quantization!r} needs bitsandbytes, which is not installed: "
            "pip install 'lsp-llm[quantization]' (or set quantization to \"none\")"
        )
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if dtype in (torch.bfloat16, torch.float32) else dtype
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_use_double_quant=True,
    )


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _explain(exc: BaseException, what: str, source: str) -> str:
    text = str(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in text.lower():
        return (
            f'out of memory while loading {what} {source!r}: try quantization "4bit", '
            'a smaller model, or device "cpu"'
        )
    if isinstance(exc, OSError | ValueError) and not Path(source).exists():
        hint = (
            "HF_HUB_OFFLINE is set, so nothing is downloaded"
            if _offline()
            else "the Hugging Face hub could not be reached or does not know it"
        )
        return (
            f"{what} {source!r} is neither a local folder nor in the Hugging Face cache, "
            f"and {hint}. Download it once with network access (it is cached), or set "
            f"the setting to a local folder. Details: {text.splitlines()[0] if text else exc!r}"
        )
    if "safetensors" in text.lower():
        return (
            f"{what} {source!r} has no safetensors weights; only safetensors are loaded "
            "unless you set allowPickleWeights to true (pickle files can run code)"
        )
    return f"could not load {what} {source!r}: {type(exc).__name__}: {text}"


def _load_one(
    source: str,
    settings: Settings,
    device: str,
    dtype: torch.dtype,
    quantization: str,
    what: str,
    tokenizer: Any | None = None,
) -> tuple[Any, Any]:
    """The model in `source` and its tokenizer (`tokenizer` when given: not read)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    qconfig = _quantization_config(quantization, dtype)
    try:
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(
                source, trust_remote_code=settings.trust_remote_code
            )
        kwargs: dict[str, Any] = {
            "dtype": dtype,
            "trust_remote_code": settings.trust_remote_code,
            "use_safetensors": None if settings.allow_pickle_weights else True,
        }
        if qconfig is not None:
            kwargs["quantization_config"] = qconfig
            kwargs["device_map"] = {"": device}
        model: Any = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        if qconfig is None:
            model.to(device)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(_explain(exc, what, source)) from exc
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def check_draft_compatible(target_tok: Any, draft_tok: Any, target: str, draft: str) -> None:
    if target_tok.get_vocab() != draft_tok.get_vocab():
        raise ModelLoadError(
            f"draft model {draft!r} does not share the tokenizer of {target!r}, so its tokens "
            "cannot be verified by the target; pick a smaller model of the same family "
            "(e.g. Qwen2.5-Coder-0.5B for Qwen2.5-Coder-1.5B/3B), or unset draftModel"
        )


def reads_target_tokenizer(folder: str) -> bool:
    """Whether a draft folder holds a `draft_vocab.json`: its rows are the target's token
    ids, so the target's tokenizer is its own (a copy in the folder is not read)."""
    return (Path(folder) / VOCAB_FILE).is_file()


def draft_vocabulary(
    folder: str, target: Any, draft: Any, name: str, tokenizer: Any
) -> DraftVocab | None:
    """The draft's `draft_vocab.json`, checked against both models and the target's
    `tokenizer`; None without one."""
    target_rows = int(target.get_output_embeddings().out_features)
    draft_rows = int(draft.get_output_embeddings().out_features)
    try:
        vocab = DraftVocab.load(Path(folder), target_rows)
    except ValueError as exc:
        raise ModelLoadError(f"draft model {name!r}: {exc}") from exc
    if vocab is not None and vocab.rows != draft_rows:
        raise ModelLoadError(
            f"draft model {name!r}: its draft_vocab.json maps {vocab.rows} rows, but the "
            f"draft has {draft_rows}"
        )
    recorded = vocab.tokenizer if vocab is not None else None
    if recorded is not None and recorded != tokenizer_fingerprint(tokenizer):
        raise ModelLoadError(
            f"draft model {name!r}: its draft_vocab.json was made for another tokenizer "
            "than the target's, so its token ids would mean other tokens"
        )
    return vocab


def trained_on_spm(source: str) -> bool:
    """Whether a local model folder's `training.json` (written by `python -m lsp_llm.train`)
    says the model saw suffix-prefix-middle FIM examples. Hub model cards are prose, so a
    hub model is taken as prefix-suffix-middle unless the user sets `completion.fimOrder`."""
    record = Path(source) / "training.json"
    try:
        rate = json.loads(record.read_text()).get("fim_spm_rate", 0)
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(rate, (int, float)) and rate > 0


def _is_moe(config: Any) -> bool:
    experts = [
        getattr(config, n, None) for n in ("num_experts", "num_local_experts", "n_routed_experts")
    ]
    return any(isinstance(e, int) and e > 1 for e in experts)


def _resolve(spec: str | None, what: str, report: Progress, weights: bool = True) -> Source:
    try:
        return resolve_source(spec, report, weights=weights)
    except (SourceError, GgufError) as exc:
        raise ModelLoadError(f"{what}: {exc}") from exc


def serves_blocks(settings: Settings, device: str) -> bool:
    """Whether a GGUF model is served from its own blocks (`ggufmodel.py`) rather than
    converted to float32: on a CPU, unless `quantization` is `none` (float weights)."""
    return device == "cpu" and settings.quantization != "none"


def _load_source(
    source: Source,
    settings: Settings,
    device: str,
    dtype: torch.dtype,
    bitsandbytes: str,
    what: str,
    report: Progress,
    tokenizer: Any | None = None,
) -> tuple[Any, Any, str | None]:
    """`_load_one` for any source: a GGUF file whose folder only describes it is served from
    its blocks where that runs, else converted to float32 first. The third value names the
    file's formats when it is served from its blocks."""
    from lsp_llm.engine.load.gguf import converted_folder

    folder = source.folder
    if source.gguf is not None:
        from lsp_llm.engine.load import ggufmodel
        from lsp_llm.engine.load.ggufmap import GgufFormatError, GgufMap

        mapped: GgufMap | None = None
        try:
            mapped = GgufMap(source.gguf)
            why = ggufmodel.unsupported(mapped)
        except (OSError, GgufFormatError) as exc:
            why = str(exc)
        if mapped is not None and why is None and serves_blocks(settings, device):
            try:
                model = ggufmodel.load_gguf_model(mapped, folder)
                if tokenizer is None:
                    tokenizer = _tokenizer(folder, settings, what)
            except ggufmodel.GgufModelError as exc:
                raise ModelLoadError(f"could not load {what} {source.name!r}: {exc}") from exc
            return model, tokenizer, ggufmodel.file_formats(mapped)
        if why is not None:
            logger.info("%s: not served from its blocks (%s)", source.gguf.name, why)
        try:
            folder = str(converted_folder(source.gguf, report))
        except GgufError as exc:
            raise ModelLoadError(f"{what}: {exc}") from exc
    model, tokenizer = _load_one(folder, settings, device, dtype, bitsandbytes, what, tokenizer)
    return model, tokenizer, None


def _tokenizer(folder: str, settings: Settings, what: str) -> Tokenizer:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, trust_remote_code=settings.trust_remote_code
        )
    except Exception as exc:
        raise ModelLoadError(_explain(exc, what, folder)) from exc
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def default_notice(source: Source) -> str:
    """What to tell a user who set no model about the one they got, and why."""
    known = catalogue.entry(source.name)
    title = known.title if known is not None else source.name
    if source.demo:
        return (
            "the bundled 5M-parameter demo model is serving: it works offline but its "
            f"suggestions are not useful ({source.why or 'set lspLlm.model'})"
        )
    where = "from its packages, hash checked" if known is not None else "the default model"
    return f"serving {title} ({where}): {source.why or 'the default model'}"


@dataclass(frozen=True)
class LoadedTokenizer:
    """A model's tokenizer without its weights (prompts for a remote engine)."""

    tokenizer: Tokenizer
    name: str
    context_window: int | None
    trained_spm: bool


def load_tokenizer(settings: Settings, progress: Progress | None = None) -> LoadedTokenizer:
    """The tokenizer and context window of the model `settings.model` names (any form the
    `model` setting takes; a GGUF file is converted once, as for serving it)."""
    from transformers import AutoConfig, AutoTokenizer

    report = progress or (lambda fraction, message: None)
    source = _resolve(settings.model, "tokenizer model", report)
    trust = settings.trust_remote_code
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.folder, trust_remote_code=trust)
        config = AutoConfig.from_pretrained(source.folder, trust_remote_code=trust)
    except Exception as exc:
        raise ModelLoadError(_explain(exc, "the tokenizer of", source.folder)) from exc
    window = getattr(config, "max_position_embeddings", None)
    return LoadedTokenizer(
        tokenizer,
        source.name,
        int(window) if isinstance(window, int) and window > 0 else None,
        trained_on_spm(source.folder),
    )


def load(settings: Settings, progress: Progress | None = None) -> LoadedModel:
    """Load the configured model (and draft model); None model means the default one
    (SmolLM2 when its package is installed, else the bundled pair)."""
    report = progress or (lambda fraction, message: None)
    report(0.01, f"resolving {settings.model or 'the default model'}")
    apply_threads(settings.threads)
    device = resolve_device(settings.device)
    blocks = serves_blocks(settings, device)
    # reports up to 0.4 when converting
    source = _resolve(settings.model, "model", report, weights=not blocks)
    draft_spec = settings.draft_model or default_draft(source.name)
    dtype = resolve_dtype(settings.dtype, device)
    bitsandbytes = resolve_quantization(settings.quantization, device, source.folder, settings)
    if blocks and source.gguf is not None:
        weights = "a GGUF file: its blocks where the kernels read them"
    else:
        shown = bitsandbytes if device.startswith("cuda") else settings.quantization
        weights = f"{str(dtype).removeprefix('torch.')}, quantization {shown}"
    report(0.5, f"loading {source.name} ({device}, {weights})")
    model, tokenizer, formats = _load_source(
        source, settings, device, dtype, bitsandbytes, "model", report
    )
    quantization, warning = bitsandbytes, None
    if formats is not None:
        quantization = f"gguf {formats}"
    elif not device.startswith("cuda"):
        quantization, warning = cpu_quantization(settings.quantization, model)
    loaded = LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=source.name,
        device=device,
        dtype=str(dtype).removeprefix("torch."),
        quantization=quantization,
        is_moe=_is_moe(model.config),
        trained_spm=trained_on_spm(source.folder),
        demo=source.demo,
        notice=default_notice(source) if settings.model in (None, AUTO) else None,
        warnings=[warning] if warning else [],
    )
    if draft_spec:
        report(0.8, f"loading draft model {draft_spec}")
        try:
            draft_report: Progress = lambda f, m: report(0.8, m)  # noqa: E731
            draft_source = _resolve(draft_spec, "draft model", draft_report, weights=not blocks)
            own_tokenizer = not reads_target_tokenizer(draft_source.folder)
            draft, draft_tok, _ = _load_source(
                draft_source,
                settings,
                device,
                dtype,
                bitsandbytes,
                "draft model",
                draft_report,
                tokenizer=None if own_tokenizer else tokenizer,
            )
            if own_tokenizer:
                check_draft_compatible(tokenizer, draft_tok, source.name, draft_source.name)
            draft_vocab = draft_vocabulary(
                draft_source.folder, model, draft, draft_source.name, tokenizer
            )
        except ModelLoadError as exc:
            # The target works without its draft: serve, and tell the user why it is slower.
            logger.warning("%s", exc)
            loaded.warnings.append(f"{exc} (continuing without a draft model)")
        else:
            loaded.draft_model = draft
            loaded.draft_vocab = draft_vocab
            loaded.draft_name = settings.draft_model or Path(draft_spec).name
    if settings.compile and device == "cpu":
        loaded.compile = True
        report(0.9, "compiling the decoding step (a minute the first time, seconds later)")
    else:
        if settings.compile:
            loaded.warnings.append(f"compile: only on a CPU for now; {device} decodes eagerly")
        report(1.0, "model ready")
    return loaded
