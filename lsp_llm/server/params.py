"""Reading the fields of custom requests and command arguments (`lspLlm/chat`'s context,
the code actions' data, the rewrite command's range): each value is checked for its JSON
kind and range here, and anything else is one `InvalidParams` (-32602) naming the field,
never an internal error."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

MAX_UINT = 2**31 - 1
"""LSP's `uinteger` bound for lines, characters and offsets."""


def _bad(where: str, expected: str, value: Any) -> JsonRpcInvalidParams:
    kind = "null" if value is None else type(value).__name__
    return JsonRpcInvalidParams(f"{where} must be {expected}, got {kind}")


def uinteger(value: Any, where: str) -> int:
    """A non-negative integer up to `MAX_UINT` (not a bool, a float or a string)."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_UINT:
        raise _bad(where, f"an integer from 0 to {MAX_UINT}", value)
    return value


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(where, "a string", value)
    return value


def field(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict):
        raise _bad(where, "an object", obj)
    if key not in obj:
        raise JsonRpcInvalidParams(f"{where}.{key} is missing")
    return obj[key]


def position(value: Any, where: str) -> types.Position:
    return types.Position(
        uinteger(field(value, "line", where), f"{where}.line"),
        uinteger(field(value, "character", where), f"{where}.character"),
    )


def lsp_range(value: Any, where: str) -> types.Range:
    return types.Range(
        position(field(value, "start", where), f"{where}.start"),
        position(field(value, "end", where), f"{where}.end"),
    )
