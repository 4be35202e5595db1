"""Reading message params into lsprotocol's types in work bounded by the expected shape,
not by the size of a wrong value.

cattrs, asked for a list, iterates whatever it is given: a 300 KB string where an array
belongs is structured character by character, each failure recorded with its own
exception (seconds and about a gigabyte for one message). Here every list-like field
checks first that it got a JSON array, and stops at its first bad element: one error,
at once, whatever the value's size.
"""

from __future__ import annotations

import collections.abc
import typing
from collections.abc import Callable
from typing import Any

import cattrs
from pygls.protocol import default_converter

SEQUENCES = (list, collections.abc.Sequence, collections.abc.MutableSequence)


class ShapeError(ValueError):
    """A value of the wrong JSON kind, reported as soon as it is seen."""


def _is_sequence(tp: Any) -> bool:
    return typing.get_origin(tp) in SEQUENCES


def _kind(value: Any) -> str:
    names = {str: "a string", dict: "an object", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "a value")


def _sequence_hook(
    tp: Any, converter: cattrs.Converter
) -> Callable[[Any, Any], list[Any] | tuple[Any, ...]]:
    (element,) = typing.get_args(tp) or (Any,)
    structure = converter.get_structure_hook(element)
    # what cattrs gives: a tuple for an immutable Sequence, a list otherwise
    made = tuple if typing.get_origin(tp) is collections.abc.Sequence else list

    def hook(value: Any, _tp: Any) -> list[Any] | tuple[Any, ...]:
        if not isinstance(value, list):
            raise ShapeError(f"expected an array, got {_kind(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(structure(item, element))
            except Exception as exc:
                raise ShapeError(f"item {i}: {exc}") from None
        return made(out)

    return hook


def bounded_converter() -> cattrs.Converter:
    """pygls' converter, with list-like fields read as above."""
    converter = default_converter()
    converter.register_structure_hook_factory(_is_sequence, _sequence_hook)
    return converter
