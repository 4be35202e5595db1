"""Typed settings, camelCase on the wire (`initializationOptions`, section `lspLlm`).

`parse_settings(data, base)` reads a JSON object over `base`: every invalid or unknown
field is reported by its dotted camelCase name, and that field keeps its value from
`base`, so one typo never loses the rest of the configuration.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful coding assistant inside the user's editor. Answer concisely; "
    "put code in fenced code blocks."
)


MAX_MODEL_CHARS = 4096
"""The longest `model` / `draftModel` value (a path, a hub id): longer is refused."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    factory: Any = dataclasses.MISSING,
    min: float | None = None,
    max: float | None = None,
    reload: bool = False,
    daemon_only: bool = False,
    restricted: bool = False,
) -> Any:
    """One setting of the schema: its default and what clients and the docs need to know.

    `doc` is what a user reads (VS Code's settings UI, docs/settings.md); `min`/`max` bound
    numbers; `reload`: a change loads another model (sessions equal in these share one
    engine); `daemon_only`: a client of a `--tcp` daemon may not change it (only the
    daemon's command line does); `restricted`: VS Code takes it from user settings only in
    an untrusted workspace (it could make the editor run a program or load model code).
    `lsp_llm.settings_schema` turns these into the extension's settings and the docs."""
    meta: dict[str, Any] = {"doc": doc}
    if min is not None:
        meta["min"] = min
    if max is not None:
        meta["max"] = max
    for flag, on in (("reload", reload), ("daemon_only", daemon_only), ("restricted", restricted)):
        if on:
            meta[flag] = True
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CompletionSettings:
    max_new_tokens: int = setting(
        96, min=1, max=4096, doc="The longest suggestion, in tokens (most end sooner, at a rule)."
    )
    context_tokens: int = setting(
        1536,
        min=16,
        max=131072,
        doc="Prompt budget in tokens (85% before the cursor, 15% after).",
    )
    multiline: Literal["auto", "always", "never"] = setting(
        "auto",
        doc="Multi-line suggestions: auto (a block at an empty line or after a line that "
        "opens one, else a line), always, never.",
    )
    prompt_style: Literal["auto", "fim", "prefix", "chat"] = setting(
        "auto",
        doc="How a completion is asked for: fim (fill-in-the-middle tokens), prefix (the "
        "code before the cursor, continued), chat (an instruction through the chat "
        "template). auto: fim when the model has FIM tokens, else prefix (measured best on "
        "SmolLM2). A style the model cannot take falls back to prefix.",
    )
    extra_context: bool = setting(
        True,
        doc="Put code from other files first in the prompt: regions of files you have "
        "open, edited or visited, and outlines of workspace modules the file imports.",
    )
    extra_context_share: float = setting(
        0.3, min=0.0, max=0.9, doc="The share of the prompt budget the extra context may take."
    )
    fim_order: Literal["auto", "psm", "spm"] = setting(
        "auto",
        doc="Fill-in-the-middle order: psm (prefix, suffix, middle) or spm (suffix first, "
        "only for models trained on it; an edit then re-reads only the changed lines). "
        "auto: spm when the model's training record says so (the bundled model), else psm "
        "(Qwen2.5-Coder and most hub models).",
    )


@dataclass(frozen=True)
class ChatSettings:
    max_new_tokens: int = setting(
        512, min=1, max=32768, doc="The longest chat answer or code action, in tokens."
    )
    temperature: float = setting(
        0.2, min=0.0, max=5.0, doc="Sampling temperature for chat (0: greedy)."
    )
    top_p: float = setting(0.95, min=0.0, max=1.0, doc="Nucleus sampling for chat.")
    system_prompt: str = setting(DEFAULT_SYSTEM_PROMPT, doc="The chat's system prompt.")
    context_tokens: int = setting(
        3072,
        min=16,
        max=131072,
        doc="Prompt budget for a chat, in tokens: the oldest turns go first when it does "
        "not fit; attached code takes at most half.",
    )
    seed: int | None = setting(
        None, doc="Seed for chat sampling, for answers that repeat; unset: a new one each time."
    )


@dataclass(frozen=True)
class SpeculationSettings:
    mode: Literal["auto", "off", "draft", "promptLookup"] = setting(
        "auto",
        doc="Speculative decoding: auto (prompt lookup when the text repeats, else the "
        "draft model, each while its measured cost and acceptance say it pays), off, draft, "
        "promptLookup.",
    )
    num_tokens: int = setting(
        6, min=1, max=64, doc="Initial draft length in tokens (adapted per request)."
    )


@dataclass(frozen=True)
class BackendSettings:
    """A remote engine with an OpenAI-compatible API (vLLM, TGI, llama.cpp's server,
    Ollama). With `url` set no weights are loaded here: generation goes to the engine."""

    url: str | None = setting(
        None,
        restricted=True,
        doc="Base URL of an OpenAI-compatible inference engine (llama.cpp server, vLLM, "
        "TGI, Ollama), e.g. http://127.0.0.1:8080/v1. Set: generation goes there and no "
        "weights are loaded here; `model` then names the tokenizer prompts are built with.",
    )
    model: str | None = setting(
        None, doc="The model name the engine serves (sent as `model`); unset: its first."
    )
    api_key: str | None = setting(
        None,
        restricted=True,
        doc="The engine's API key (stored in plain text in settings; prefer apiKeyEnv).",
    )
    api_key_env: str | None = setting(
        None,
        restricted=True,
        doc="The environment variable of the server process that holds the engine's API key.",
    )

    @property
    def remote(self) -> bool:
        return self.url is not None

    def key(self) -> str | None:
        """The API key: `apiKey`, else the variable `apiKeyEnv` names."""
        import os

        if self.api_key:
            return self.api_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True)
class Settings:
    model: str | None = setting(
        None,
        reload=True,
        restricted=True,
        doc="A catalogue model (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2, bundled: "
        "`lsp-llm models`), a Hugging Face id, a local folder, a .gguf file or "
        "org/repo:FILE.gguf. Unset or auto: the best installed catalogue model for this "
        "machine (Qwen2.5-Coder-0.5B on a CPU, the 1.5B with the 0.5B as draft on CUDA, then "
        "SmolLM2, then the bundled demo pair).",
    )
    draft_model: str | None = setting(
        None,
        reload=True,
        restricted=True,
        doc="A smaller model with the same tokenizer, for speculative decoding (same forms "
        "as model). Unset: the 0.5B with the 1.5B on CUDA, SmolLM2's distilled draft with "
        "SmolLM2, the bundled draft with the bundled model, else none.",
    )
    quantization: Literal["auto", "4bit", "8bit", "none"] = setting(
        "auto",
        reload=True,
        doc="Weight quantization: bitsandbytes on CUDA; on a CPU a GGUF file's own blocks "
        "(any value but none, which converts it to float32), and for other models packed "
        "int4/int8 weights for decoding (auto: int4 for models of 64 MiB and more, 16 MiB "
        "with the native kernels).",
    )
    device: str = setting("auto", reload=True, doc="auto, cpu, cuda, cuda:N or mps.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = setting(
        "auto", reload=True, doc="The weights' floating-point type (auto: by device)."
    )
    trust_remote_code: bool = setting(
        False,
        reload=True,
        daemon_only=True,
        restricted=True,
        doc="Run model code from the hub.",
    )
    allow_pickle_weights: bool = setting(
        False,
        reload=True,
        daemon_only=True,
        restricted=True,
        doc="Load non-safetensors (pickle) weights.",
    )
    threads: int = setting(
        0,
        min=0,
        max=1024,
        reload=True,
        daemon_only=True,
        doc="CPU threads for the model's matrix products (0: the physical cores this "
        "process may use); process-wide.",
    )
    compile: bool = setting(
        False,
        reload=True,
        daemon_only=True,
        restricted=True,
        doc="On a CPU, compile the model's decoding step with torch.compile: faster "
        "decoding of float32/int8 models of SmolLM2's size and up, for a compilation at load "
        "(a minute the first time on a small CPU, seconds later). Needs a C++ compiler. Not "
        "used where lsp-llm's native kernels run the layers (int4 on AVX2): they are faster.",
    )
    # `setting` returns a dataclass field (a default factory here), which ruff cannot see.
    completion: CompletionSettings = setting(factory=CompletionSettings, doc="Completions.")  # noqa: RUF009
    chat: ChatSettings = setting(factory=ChatSettings, doc="Chat and code actions.")  # noqa: RUF009
    speculation: SpeculationSettings = setting(  # noqa: RUF009
        factory=SpeculationSettings, doc="Speculative decoding."
    )
    backend: BackendSettings = setting(  # noqa: RUF009
        factory=BackendSettings,
        reload=True,
        daemon_only=True,
        doc="A remote inference engine instead of local weights.",
    )


def flagged(flag: str) -> tuple[str, ...]:
    """The top-level `Settings` fields (snake_case) whose schema sets `flag` (`reload`,
    `daemon_only`)."""
    return tuple(f.name for f in dataclasses.fields(Settings) if f.metadata.get(flag))


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def to_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_value(value: Any, tp: Any, meta: typing.Mapping[str, Any]) -> tuple[bool, Any, str]:
    """Return (ok, converted value, expectation) for one scalar field."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return True, None, ""
        return _check_value(value, args[0], meta)
    if origin is Literal:
        choices = typing.get_args(tp)
        return value in choices, value, "one of " + ", ".join(repr(c) for c in choices)
    if tp is bool:
        return isinstance(value, bool), value, "true or false"
    if tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return _in_range(ok, value, meta, "an integer")
    if tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)  # NaN passes every range check
        return _in_range(ok, float(value) if ok else value, meta, "a number")
    if tp is str:
        return isinstance(value, str), value, "a string"
    raise TypeError(f"unsupported settings type {tp!r}")


def _in_range(
    ok: bool, value: Any, meta: typing.Mapping[str, Any], what: str
) -> tuple[bool, Any, str]:
    lo, hi = meta.get("min"), meta.get("max")
    expect = what + (f" from {lo} to {hi}" if lo is not None and hi is not None else "")
    if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        ok = False
    return ok, value, expect


def _parse(cls: Any, data: Any, base: Any, prefix: str, errors: list[str]) -> Any:
    if not isinstance(data, dict):
        errors.append(f"{prefix or 'settings'}: expected an object, got {_show(data)}")
        return base
    hints = typing.get_type_hints(cls)
    fields = {to_camel(f.name): f for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        f = fields.get(key) or fields.get(to_camel(key))
        if f is None:
            errors.append(f"{_show_key(name)}: unknown setting")
            continue
        tp = hints[f.name]
        current = getattr(base, f.name)
        if dataclasses.is_dataclass(tp):
            changes[f.name] = _parse(tp, value, current, name + ".", errors)
            continue
        ok, converted, expect = _check_value(value, tp, f.metadata)
        if ok and f.name == "device" and not _DEVICE.match(converted):
            ok, expect = False, "auto, cpu, mps, cuda or cuda:N"
        if ok and cls is BackendSettings and converted is not None:
            if f.name == "url" and not _URL.match(converted):
                ok, expect = (
                    False,
                    "an http:// or https:// base URL such as http://127.0.0.1:8080/v1",
                )
            if f.name == "api_key_env" and not _ENV_NAME.match(converted):
                ok, expect = False, "an environment variable name"
        if (
            ok
            and f.name in ("model", "draft_model")
            and converted is not None
            and (not converted.strip() or len(converted) > MAX_MODEL_CHARS)
        ):
            ok, expect = (
                False,
                f"a model id or path of at most {MAX_MODEL_CHARS} characters (or null for the "
                "default)",
            )
        if ok:
            changes[f.name] = converted
        else:
            if f.name == "api_key":  # never echo a secret into a message or a log
                value, current = "(hidden)", "(hidden)" if current else None
            errors.append(f"{name}: expected {expect}, got {_show(value)}; kept {_show(current)}")
    return dataclasses.replace(base, **changes)


def _show_key(name: str) -> str:
    """A setting's name as a message shows it: a short excerpt of a long one."""
    return name if len(name) <= 60 else name[:57] + "..."


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


def parse_settings(data: Any, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Apply a camelCase JSON object over `base`; return the settings and the problems."""
    errors: list[str] = []
    base = base or Settings()
    if data is None:
        return base, errors
    return _parse(Settings, data, base, "", errors), errors


def settings_to_wire(settings: Any) -> dict[str, Any]:
    """The camelCase JSON form (for logs, status and the extension's defaults)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        out[to_camel(f.name)] = (
            settings_to_wire(value) if dataclasses.is_dataclass(value) else value
        )
    return out
