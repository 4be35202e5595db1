"""Stop rules applied to generated text as it grows, one accepted token at a time.

`StopChecker.feed` says how much of the text may be emitted now (holding back what could
still turn out to lie past a stop point) and whether the generation must end.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_llm.engine.types import StopRules

REPEAT_BLOCK_LINES = 3
"""The longest block of lines the repetition rule looks for (a line, a pair, a triple)."""


@dataclass(frozen=True)
class StopVerdict:
    emit_upto: int
    """Characters of the text that are final and may be streamed."""
    stop_at: int | None = None
    """When set, the generation ends and the text is cut here."""


def _indent_width(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass(frozen=True)
class _Line:
    content: str
    """The line without its trailing whitespace."""
    end: int
    """Offset in the text just past `content`."""


def _complete_lines(text: str) -> list[_Line]:
    """The non-blank lines of `text` that a newline has ended."""
    lines: list[_Line] = []
    start = 0
    while (nl := text.find("\n", start)) >= 0:
        content = text[start:nl].rstrip()
        if content.strip():
            lines.append(_Line(content, start + len(content)))
        start = nl + 1
    return lines


@dataclass(frozen=True)
class _Repeat:
    kept_end: int
    """Offset just past the first copy: where a cut would fall."""
    copies: int
    """Whole copies in a row so far, the first included."""


def _repeats(lines: list[_Line]) -> list[_Repeat]:
    """For each block length, the run of copies that the last lines close (if any)."""
    found: list[_Repeat] = []
    for period in range(1, REPEAT_BLOCK_LINES + 1):
        j = len(lines) - 1
        while j - period >= 0 and lines[j].content == lines[j - period].content:
            j -= 1
        repeated = len(lines) - 1 - j
        if repeated > 0:
            found.append(_Repeat(lines[j].end, 1 + repeated // period))
    return found


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
        content yet (held back in block mode) is dropped; the last line counts as ended for
        the repetition rule.
        """
        verdict = self.feed(text)
        if verdict.stop_at is not None:
            return text[: verdict.stop_at]
        repeat = self._repeat_cut(text + "\n")
        if repeat is not None:
            return text[:repeat]
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
        repeat = self._repeat_cut(text)
        if repeat is not None:
            cuts.append(repeat)
        return min(cuts) if cuts else None

    def _repeat_cut(self, text: str) -> int | None:
        limit = self.rules.max_line_repeats
        if limit is None:
            return None
        cuts = [r.kept_end for r in _repeats(_complete_lines(text)) if r.copies >= limit]
        return min(cuts) if cuts else None

    def _repeat_safe(self, text: str) -> int:
        """With the repetition rule, whole lines only, and none after the first copy of a
        block that already repeats: a later copy may still complete the run and be cut."""
        lines = _complete_lines(text)
        if not lines:
            return 0
        return min([lines[-1].end, *(r.kept_end for r in _repeats(lines))])

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
        safe = len(text) - max(self._stop_string_tail(text), self._blank_tail(text))
        if self.rules.max_line_repeats is not None:
            safe = min(safe, self._repeat_safe(text))
        return safe

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
