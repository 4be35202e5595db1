"""Training examples turned into token rows of one fixed length.

A fill-in-the-middle or chat example is only useful whole: its middle or answer means
something only after its prefix, suffix or question. So such an example is never split
across rows: one that does not fit the rest of a row starts the next row, and the gap is
filled with plain code (which may be cut anywhere). Examples longer than a row are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from lsp_llm.train.data import SPECIAL, Example

Encoded = tuple[list[int], list[bool]]
"""Token ids and, per token, whether it counts in the loss."""


def encoder(tokenizer: Any) -> Callable[[Example], Encoded]:
    """Encodes an example: special tokens by name, text without added specials; plain code
    ends with `<|endoftext|>`."""
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")

    def encode(ex: Example) -> Encoded:
        ids: list[int] = []
        mask: list[bool] = []
        for text, counted in ex.parts:
            if text in SPECIAL:
                piece = [tokenizer.convert_tokens_to_ids(text)]
            else:
                piece = tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True)
            ids += piece
            mask += [counted] * len(piece)
        if ex.kind == "code":
            ids.append(end)
            mask.append(True)
        return ids, mask

    return encode


def packed_rows(
    encode: Callable[[Example], Encoded],
    stream: Iterator[Example],
    filler: Iterator[Example],
    length: int,
) -> Iterator[Encoded]:
    """Endless rows of exactly `length` tokens from `stream`; gaps filled from `filler`
    (plain code)."""
    held: Encoded | None = None
    while True:
        ids: list[int] = []
        mask: list[bool] = []
        while len(ids) < length:
            room = length - len(ids)
            if held is None:
                ex = next(stream)
                e_ids, e_mask = encode(ex)
                if ex.kind == "code":
                    ids += e_ids[:room]
                    mask += e_mask[:room]
                    continue
                if len(e_ids) > length:
                    continue
                held = (e_ids, e_mask)
            if len(held[0]) <= room:
                ids += held[0]
                mask += held[1]
                held = None
                continue
            f_ids, f_mask = encode(next(filler))
            ids += f_ids[:room]
            mask += f_mask[:room]
        yield ids, mask


def batches(
    rows: Iterator[Encoded], size: int
) -> Iterator[tuple[list[list[int]], list[list[bool]]]]:
    while True:
        chunk = [next(rows) for _ in range(size)]
        yield [r[0] for r in chunk], [r[1] for r in chunk]
