"""A draft model's own, smaller vocabulary: which of the target's token ids it reads and
proposes.

A draft for a model with a large vocabulary (SmolLM2: 49,152 tokens) spends most of its
pass on the output head. Keeping only the tokens that code actually uses (by frequency in
the training slice) makes the head several times cheaper while the tokens it cannot say
are rare. The draft reads any other token as one shared "unknown" id and never proposes
it. The map is stored next to the draft's weights as `draft_vocab.json`: the target ids
of the draft's rows, in order (the row after the last is "unknown"), and a fingerprint of
the target's tokenizer. Ids mean nothing without their tokenizer, so a draft with a map
reads text through the target's tokenizer, and the fingerprint keeps it from being paired
with another target that merely has as many tokens.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

VOCAB_FILE = "draft_vocab.json"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of a tokenizer's token -> id table."""
    table = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(table, ensure_ascii=False).encode()).hexdigest()


class DraftVocab:
    """Maps between the target's token ids and the draft's rows."""

    def __init__(
        self, target_ids: Sequence[int], target_vocab_size: int, tokenizer: str | None = None
    ) -> None:
        """`tokenizer`: the target tokenizer's `tokenizer_fingerprint`, when known."""
        if len(set(target_ids)) != len(target_ids):
            raise ValueError("a draft vocabulary lists each target token once")
        if any(not 0 <= t < target_vocab_size for t in target_ids):
            raise ValueError("a draft vocabulary lists a token the target does not have")
        self.to_target = torch.tensor(list(target_ids), dtype=torch.long)
        self.unknown = len(target_ids)
        """The draft's row for every target token it does not keep."""
        self.to_draft = torch.full((target_vocab_size,), self.unknown, dtype=torch.long)
        self.to_draft[self.to_target] = torch.arange(len(target_ids))
        self.tokenizer = tokenizer

    @property
    def rows(self) -> int:
        """The draft's vocabulary size: the kept tokens and "unknown"."""
        return self.unknown + 1

    def draft_ids(self, target_ids: Sequence[int]) -> list[int]:
        if not target_ids:
            return []
        index = torch.tensor(target_ids, dtype=torch.long).clamp_(0, len(self.to_draft) - 1)
        return self.to_draft[index].tolist()

    def target_id(self, draft_id: int) -> int | None:
        """The target token for a draft row; None for "unknown" (never proposed)."""
        return int(self.to_target[draft_id]) if 0 <= draft_id < self.unknown else None

    def save(self, folder: Path) -> None:
        payload: dict[str, Any] = {
            "target_vocab_size": len(self.to_draft),
            "target_ids": self.to_target.tolist(),
        }
        if self.tokenizer is not None:
            payload["tokenizer"] = self.tokenizer
        (folder / VOCAB_FILE).write_text(json.dumps(payload) + "\n")

    @classmethod
    def load(cls, folder: Path, target_vocab_size: int) -> DraftVocab | None:
        """The map stored in a draft's folder, for a target of `target_vocab_size` tokens;
        None where there is none (a draft that shares the target's whole vocabulary).
        ValueError when the file does not fit that target or cannot be read."""
        path = folder / VOCAB_FILE
        if not path.is_file():
            return None
        try:
            payload = json.loads(path.read_text())
            size, ids = payload["target_vocab_size"], payload["target_ids"]
            fingerprint = payload.get("tokenizer")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"unreadable {VOCAB_FILE} ({exc})") from exc
        if size != target_vocab_size:
            raise ValueError(
                f"{VOCAB_FILE} maps onto {size!r} tokens, the target has {target_vocab_size}"
            )
        if not isinstance(ids, list) or not all(isinstance(t, int) for t in ids):
            raise ValueError(f"{VOCAB_FILE}: target_ids must be a list of token ids")
        if fingerprint is not None and not isinstance(fingerprint, str):
            raise ValueError(f"{VOCAB_FILE}: tokenizer must be a fingerprint string")
        return cls(ids, target_vocab_size, fingerprint)
