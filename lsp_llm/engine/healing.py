"""Token healing on the engine side: while the first generated tokens must reproduce the
text a prompt was backed up over (`GenerationRequest.heal`), only tokens consistent with
what is left of it may be picked.

A prompt that ends inside what the tokenizer would merge (trailing indentation, a partial
identifier) is cut back to a token boundary by `context.healing`; here the model chooses
how to spell that text again, so `"\\n    "` becomes the `"\\n   "` + `" return"` it was
trained on, and the suggestion never starts with a stray space or newline.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from typing import Any

import torch

CACHED_MASKS = 64


class TokenTexts:
    """The text of every token of a tokenizer (special and added tokens left out: they
    never spell user text), and the masks of tokens allowed while healing.

    Each keystroke heals a different text, so a mask is rarely reused; it is found through
    two indexes instead of a scan of the vocabulary (a scan cost a good part of a one-line
    suggestion: docs/engine-decisions.md): the tokens spelling a start of the text are
    looked up by their text, those going on past it are a range of the sorted texts."""

    def __init__(self, tokenizer: Any, width: int) -> None:
        size = min(len(tokenizer), width)
        texts = tokenizer.batch_decode([[i] for i in range(size)])
        skip = set(getattr(tokenizer, "all_special_ids", []) or [])
        skip.update(int(i) for i in (tokenizer.get_added_vocab() or {}).values())
        self.texts: list[str] = [
            "" if i in skip or "\ufffd" in t else t for i, t in enumerate(texts)
        ]
        self.width = width
        self._by_text: dict[str, list[int]] = {}
        for i, t in enumerate(self.texts):
            if t:
                self._by_text.setdefault(t, []).append(i)
        ordered = sorted((t, i) for i, t in enumerate(self.texts) if t)
        self._sorted = [t for t, _ in ordered]
        self._sorted_ids = torch.tensor([i for _, i in ordered], dtype=torch.long)
        self._spaces = sorted({c for t in self._by_text for c in t if c.isspace()})
        self._masks: OrderedDict[tuple[str, bool], torch.Tensor] = OrderedDict()

    def allowed(self, remaining: str, no_space_after: bool = False) -> torch.Tensor:
        """A [width] bool mask: tokens that start with `remaining`, or that `remaining`
        starts with (the text is then spelled over several tokens). With `no_space_after`,
        a token may not go on past `remaining` with whitespace: the user's cursor sits after
        a space or indentation, so what follows starts right there."""
        key = (remaining, no_space_after)
        mask = self._masks.get(key)
        if mask is None:
            mask = torch.zeros(self.width, dtype=torch.bool)
            mask[self._starting_with(remaining)] = True
            if no_space_after:
                for space in self._spaces:
                    mask[self._starting_with(remaining + space)] = False
            spelled = [remaining[:k] for k in range(1, len(remaining) + 1)]
            ids = [i for t in spelled for i in self._by_text.get(t, ())]
            mask[torch.tensor(ids, dtype=torch.long)] = True
            self._masks[key] = mask
            if len(self._masks) > CACHED_MASKS:
                self._masks.popitem(last=False)
        self._masks.move_to_end(key)
        return mask

    def _starting_with(self, prefix: str) -> torch.Tensor:
        """The ids of the tokens whose text starts with `prefix`: a range of the sorted
        texts."""
        if not prefix:
            return self._sorted_ids
        lo = bisect_left(self._sorted, prefix)
        last = ord(prefix[-1])
        if last < 0x10FFFF:  # the first text past them: the prefix with its last char bumped
            hi = bisect_left(self._sorted, prefix[:-1] + chr(last + 1), lo)
        else:
            hi = lo
            while hi < len(self._sorted) and self._sorted[hi].startswith(prefix):
                hi += 1
        return self._sorted_ids[lo:hi]


def _fits(token: str, remaining: str, no_space_after: bool) -> bool:
    if not token:
        return False
    if remaining.startswith(token):
        return True
    if not token.startswith(remaining):
        return False
    return not (no_space_after and token[len(remaining) : len(remaining) + 1].isspace())


def constrain(row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One position's logits with every token outside `mask` ruled out, as a [1, vocab]
    tensor (what `pick_tokens` reads). A mask that allows nothing leaves the row as is."""
    mask = mask.to(row.device)
    if not bool(mask.any()):
        return row.unsqueeze(0)
    return row.masked_fill(~mask, float("-inf")).unsqueeze(0)
