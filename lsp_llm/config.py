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


@dataclass(frozen=True)
class CompletionSettings:
    max_new_tokens: int = field(default=96, metadata={"min": 1, "max": 4096})
    context_tokens: int = field(default=1536, metadata={"min": 16, "max": 131072})
    multiline: Literal["auto", "always", "never"] = "auto"
    prompt_style: Literal["auto", "fim", "prefix", "chat"] = "auto"
    """How a completion is asked for: fill-in-the-middle tokens, the code before the cursor
    to be continued, or a chat instruction; `auto` is FIM when the model has FIM tokens,
    else prefix (measured best on SmolLM2, see the README's quality table)."""
    extra_context: bool = True
    """Put code from other files in the prompt: regions of the files the user has open,
    edited or visited, and the outlines of workspace modules the file imports."""
    extra_context_share: float = field(default=0.3, metadata={"min": 0.0, "max": 0.9})
    """The share of `context_tokens` the extra context may take."""
    fim_order: Literal["auto", "psm", "spm"] = "auto"
    """Fill-in-the-middle order: prefix-suffix-middle, or suffix-prefix-middle (only for
    models trained on it); `auto` is SPM when the model's training record says it was
    trained on it (the bundled model), PSM otherwise (Qwen2.5-Coder and most hub models)."""


@dataclass(frozen=True)
class ChatSettings:
    max_new_tokens: int = field(default=512, metadata={"min": 1, "max": 32768})
    temperature: float = field(default=0.2, metadata={"min": 0.0, "max": 5.0})
    top_p: float = field(default=0.95, metadata={"min": 0.0, "max": 1.0})
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    context_tokens: int = field(default=3072, metadata={"min": 16, "max": 131072})
    seed: int | None = None


@dataclass(frozen=True)
class SpeculationSettings:
    mode: Literal["auto", "off", "draft", "promptLookup"] = "auto"
    num_tokens: int = field(default=6, metadata={"min": 1, "max": 64})


@dataclass(frozen=True)
class BackendSettings:
    """A remote engine with an OpenAI-compatible API (vLLM, TGI, llama.cpp's server,
    Ollama). With `url` set no weights are loaded here: generation goes to the engine."""

    url: str | None = None
    """The API's base URL, e.g. `http://127.0.0.1:8080/v1`."""
    model: str | None = None
    """The model name the engine serves (sent as `model`); None: the engine's default."""
    api_key: str | None = None
    api_key_env: str | None = None
    """The environment variable of the server process that holds the API key."""

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
    model: str | None = None
    """A catalogue alias (`qwen2.5-coder-0.5b`, `qwen2.5-coder-1.5b`, `smollm2`, `bundled`:
    `lsp-llm models`), a Hugging Face id, a local folder, a `.gguf` file (or a folder
    holding one) or `org/repo:FILE.gguf`; None or `auto`: the best installed catalogue
    model for this hardware (`engine.catalogue.choose_default`)."""
    draft_model: str | None = None
    quantization: Literal["auto", "4bit", "8bit", "none"] = "auto"
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    trust_remote_code: bool = False
    allow_pickle_weights: bool = False
    threads: int = field(default=0, metadata={"min": 0, "max": 1024})
    """CPU threads for the model's matrix products; 0: this machine's physical cores
    (those this process may run on). Process-wide; applied when the model loads."""
    compile: bool = False
    """On a CPU, compile a decoding step's layers into one graph with torch.compile: about
    1.2-1.3x faster decoding of float32/int8 models of SmolLM2's size and up, for a
    compilation at load (a minute the first time on a small CPU, seconds later). Needs a
    C++ compiler. Not used where the native layers run (int4 on AVX2): they are faster."""
    completion: CompletionSettings = field(default_factory=CompletionSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    speculation: SpeculationSettings = field(default_factory=SpeculationSettings)
    backend: BackendSettings = field(default_factory=BackendSettings)


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
