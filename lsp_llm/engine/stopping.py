"""Stop rules applied to generated text as it grows, one accepted token at a time.

`StopChecker.feed` says how much of the text may be emitted now (holding back what could
still turn out to lie past a stop point) and whether the generation must end.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_llm.engine.types import StopRules


@dataclass(frozen=True)
class StopVerdict:
    emit_upto: int
    """Characters of the text that are final and may be streamed."""
    stop_at: int | None = None
    """When set, the generation ends and the text is cut here."""


def _indent_width(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


class StopChecker:
    def __init__(self, rules: StopRules) -> None:
        self.rules = rules

    def feed(self, text: str) -> StopVerdict:
        """Check the whole generated text so far; cheap enough to call per token."""
        cut = self._first_stop(text)
        if cut is not None:
            return StopVerdict(emit_upto=cut, stop_at=cut)
        return StopVerdict(emit_upto=self._safe_length(text))

    def finish(self, text: str) -> str:
        """The final text when the generation ends for another reason (EOS, length).

        A partial stop string at the very end is real text then; a trailing line with no
        content yet (held back in block mode) is dropped.
        """
        verdict = self.feed(text)
        if verdict.stop_at is not None:
            return text[: verdict.stop_at]
        return text[: len(text) - self._blank_tail(text)]

    def _first_stop(self, text: str) -> int | None:
        cuts: list[int] = []
        for s in self.rules.stop_strings:
            i = text.find(s)
            if i >= 0:
                cuts.append(i)
        if self.rules.single_line:
            i = text.find("\n")
            if i >= 0:
                cuts.append(i)
        elif self.rules.block_indent is not None:
            dedent = self._dedent_cut(text)
            if dedent is not None:
                cuts.append(dedent)
        return min(cuts) if cuts else None

    def _dedent_cut(self, text: str) -> int | None:
        """Offset of the newline before the first complete-enough line that leaves the block."""
        assert self.rules.block_indent is not None
        start = 0
        first = True
        while True:
            nl = text.find("\n", start)
            line = text[start:] if nl < 0 else text[start:nl]
            skip = first and self.rules.first_line_open
            if not skip and line.strip() and _indent_width(line) < self.rules.block_indent:
                return start - 1 if start > 0 else 0
            if nl < 0:
                return None
            first = False
            start = nl + 1

    def _safe_length(self, text: str) -> int:
        """Hold back a tail that may still become a stop point."""
        return len(text) - max(self._stop_string_tail(text), self._blank_tail(text))

    def _stop_string_tail(self, text: str) -> int:
        held = 0
        for s in self.rules.stop_strings:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    held = max(held, k)
                    break
        return held

    def _blank_tail(self, text: str) -> int:
        """In block mode, a last line without content yet: its indentation decides whether
        the newline before it ends the completion."""
        if self.rules.single_line or self.rules.block_indent is None:
            return 0
        nl = text.rfind("\n")
        if nl >= 0 and not text[nl + 1 :].strip():
            return len(text) - nl
        return 0
