"""The custom protocol's messages as attrs classes: `lspLlm/chat`'s params and result, and
the data a code action carries to its resolve. Mirrored in the extension's TypeScript
(`extension/src/chatStream.ts`; `tests/test_wire.py` checks the two agree);
docs/protocol.md describes them.

They are read with a converter of their own, stricter than cattrs' defaults (which turn
`true` into 1 and 3 into "3"): an integer must be a JSON integer in LSP's `uinteger`
range, a string a string, an array an array read up to its first bad element (the bound
`structuring.py` keeps for lsprotocol's types). Whatever does not fit is one
`InvalidParams` (-32602) that names the field, such as
`lspLlm/chat.messages[0].role must be one of system, user, assistant`.
"""

from __future__ import annotations

import collections.abc
import re
import typing
from collections.abc import Callable
from typing import Any, Literal, NewType, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError, IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp_llm.generation.budget import readable

MAX_UINT = 2**31 - 1
"""LSP's `uinteger` bound for lines, characters and offsets."""

Version = NewType("Version", int)
"""A document's version: LSP's `integer` (signed 32 bits), not a `uinteger`."""
Role = Literal["system", "user", "assistant"]
Action = Literal["docstring", "fillBody"]
T = TypeVar("T")


@attrs.frozen
class ChatMessage:
    role: Role
    content: str


@attrs.frozen
class ChatContext:
    """The code a question is about: a document, or a range of it."""

    uri: str
    range: types.Range | None = None


@attrs.frozen
class ChatParams:
    messages: list[ChatMessage]
    """The conversation so far; the last message is the user's question."""
    context: ChatContext | None = None
    partial_result_token: int | str | None = None
    """Where the reply's deltas go, as `$/progress` notifications (`{"delta": text}`)."""


@attrs.frozen
class ChatUsage:
    prompt_tokens: int
    completion_tokens: int


@attrs.frozen
class ChatTimings:
    queue_ms: float
    first_token_ms: float | None
    total_ms: float
    tokens_per_second: float
    server_ms: float


@attrs.frozen
class ChatResult:
    content: str
    finish_reason: str
    usage: ChatUsage
    timings: ChatTimings


@attrs.frozen
class ActionData:
    """What a code action carries from the offer to its resolve (or its command)."""

    action: Action
    uri: str
    start: int
    """The cursor's offset in characters when the action was offered."""
    version: Version | None = None
    """The document's version then: a changed document is refused, not edited."""


WIRE_TYPES = (ChatMessage, ChatContext, ChatParams, ChatUsage, ChatTimings, ChatResult, ActionData)


class WireError(ValueError):
    """A value that does not fit its field, said in words for the client."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    for kind, name in ((str, "a string"), (dict, "an object"), (list, "an array")):
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, int | float) else "a value"


def _integer(low: int, high: int) -> Callable[[Any, Any], int]:
    def hook(value: Any, _tp: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise WireError(f"must be an integer from {low} to {high}, got {_kind(value)}")
        if not low <= value <= high:
            raise WireError(f"must be an integer from {low} to {high}, got one out of range")
        return value

    return hook


def _string(value: Any, _tp: Any) -> str:
    if not isinstance(value, str):
        raise WireError(f"must be a string, got {_kind(value)}")
    return readable(value)  # lone surrogates (JSON allows them) cannot be tokenized


def _number(value: Any, _tp: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise WireError(f"must be a number, got {_kind(value)}")
    return float(value)


def _token(value: Any, _tp: Any) -> int | str | None:
    """A progress token: LSP's `integer | string`, or none."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise WireError(f"must be an integer or a string, got {_kind(value)}")


def _literal_hook(tp: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    allowed = typing.get_args(tp)

    def hook(value: Any, _tp: Any) -> Any:
        if value not in allowed or isinstance(value, bool):
            raise WireError(f"must be one of {', '.join(map(str, allowed))}")
        return value

    return hook


def _list_hook(tp: Any, converter: cattrs.Converter) -> Callable[[Any, Any], list[Any]]:
    (element,) = typing.get_args(tp) or (Any,)
    structure = converter.get_structure_hook(element)

    def hook(value: Any, _tp: Any) -> list[Any]:
        if not isinstance(value, list):
            raise WireError(f"must be an array, got {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(structure(item, element))
            except Exception as exc:
                # the first bad element ends it, with its index in the path
                exc.__notes__ = [IterableValidationNote(f"@ index {i}", i, element)]
                raise IterableValidationError("in an array", [exc], tp) from None
        return out

    return hook


def _object(structure: Callable[[Any, Any], T]) -> Callable[[Any, Any], T]:
    """`structure`, for a JSON object only (anything else would fail field by field)."""

    def hook(value: Any, tp: Any) -> T:
        if not isinstance(value, dict):
            raise WireError(f"must be an object, got {_kind(value)}")
        return structure(value, tp)

    return hook


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook(int, _integer(0, MAX_UINT))
    converter.register_structure_hook(Version, _integer(-(2**31), 2**31 - 1))
    converter.register_structure_hook(str, _string)
    converter.register_structure_hook(float, _number)
    converter.register_structure_hook_factory(
        lambda tp: typing.get_origin(tp) is Literal, _literal_hook
    )
    converter.register_structure_hook_factory(
        lambda tp: typing.get_origin(tp) in (list, collections.abc.Sequence), _list_hook
    )
    converter.register_structure_hook(int | str | None, _token)
    for cls in (types.Position, types.Range, *WIRE_TYPES):  # parts before what holds them
        names: dict[str, Any] = {f.name: override(rename=_camel(f.name)) for f in attrs.fields(cls)}
        converter.register_structure_hook(
            cls, _object(make_dict_structure_fn(cls, converter, **names))
        )
        converter.register_unstructure_hook(cls, make_dict_unstructure_fn(cls, converter, **names))
    return converter


CONVERTER = _converter()


def _say(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, KeyError):
        return "is missing"
    if isinstance(exc, WireError):
        return str(exc)
    if isinstance(exc, ValueError | TypeError) and tp is not None:
        return f"must be {getattr(tp, '__name__', tp)}: {exc}"
    return f"is invalid ({type(exc).__name__})"


def structure(value: Any, cls: type[T], where: str) -> T:
    """`value` (JSON as the client sent it) as `cls`, or the first reason it is not one,
    as `InvalidParams` naming the field under `where`."""
    try:
        return CONVERTER.structure(value, cls)
    except (ClassValidationError, IterableValidationError) as exc:
        first = cattrs.transform_error(exc, path=where, format_exception=_say)[0]
        message, _, path = first.rpartition(" @ ")
        path = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path)  # the wire's names
        raise JsonRpcInvalidParams(f"{path} {message}") from None
    except (WireError, ValueError, TypeError) as exc:
        # the value itself is not an object (no field to name)
        reason = (
            str(exc) if isinstance(exc, WireError) else f"must be an object, got {_kind(value)}"
        )
        raise JsonRpcInvalidParams(f"{where} {reason}") from None


def unstructure(value: Any) -> Any:
    """A wire object as JSON (camelCase keys)."""
    return CONVERTER.unstructure(value)
