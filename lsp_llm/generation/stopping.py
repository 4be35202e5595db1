"""Stop rules applied to generated text as it grows, one accepted token at a time.

`StopChecker.feed` says how much of the text may be emitted now (holding back what could
still turn out to lie past a stop point) and whether the generation must end.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsp_llm.generation.types import StopRules

REPEAT_BLOCK_LINES = 3
"""The longest block of lines the repetition rule looks for (a line, a pair, a triple)."""
CYCLE_PIECE_CHARS = 32
"""The longest piece of text the in-line loop rule looks for."""
CYCLE_COPIES = 4
"""Copies in a row of that piece before a line counts as a loop."""


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


@dataclass(frozen=True)
class _RepeatScan:
    cut: int | None
    """Where the text ends, once a run has come `limit` times."""
    safe: int
    """How much may be streamed: whole lines, and none after the first copy of a block
    that already repeats (a later copy may still complete the run and be cut)."""


def _scan_repeats(text: str, limit: int) -> _RepeatScan:
    lines = _complete_lines(text)
    repeats = _repeats(lines)
    cuts = [r.kept_end for r in repeats if r.copies >= limit]
    safe = min([lines[-1].end, *(r.kept_end for r in repeats)]) if lines else 0
    return _RepeatScan(min(cuts) if cuts else None, safe)


def line_cycle(line: str) -> int:
    """How many characters at the end of `line` one piece of text repeated back to back
    covers, at least `CYCLE_COPIES` times (the longest such run over pieces of 1 to
    `CYCLE_PIECE_CHARS` characters); 0 when there is none, or when the run is a single
    punctuation or space character over and over (a separator such as `-----`)."""
    n = len(line)
    best = 0
    same = n - len(line.rstrip(line[-1])) if line else 0  # the last character's run
    for piece in range(1, min(CYCLE_PIECE_CHARS, n // CYCLE_COPIES) + 1):
        # inside that run every character equals the one `piece` before it: start past it
        i = n - same + piece - 1 if piece < same else n - 1
        while i >= piece and line[i] == line[i - piece]:
            i -= 1
        covered = n - 1 - i + piece
        separator = covered <= same and not line[-1].isalnum()  # one character over and over
        if covered >= CYCLE_COPIES * piece and covered > best and not separator:
            best = covered
    return best


class StopChecker:
    def __init__(self, rules: StopRules) -> None:
        self.rules = rules
        self._line_start = 0
        """Where the last line began at the previous call (for the loop rule)."""

    def feed(self, text: str) -> StopVerdict:
        """Check the whole generated text so far; cheap enough to call per token."""
        repeats = self._scan(text)
        cut = self._first_stop(text, repeats)
        if cut is not None:
            return StopVerdict(emit_upto=cut, stop_at=cut)
        safe = self._safe_length(text)
        if repeats is not None:
            safe = min(safe, repeats.safe)
        if self.rules.max_line_cycle is not None:
            # the last line may still turn into a loop, and the cut would take its newline
            safe = min(safe, max(text.rfind("\n"), 0))
        return StopVerdict(emit_upto=safe)

    def finish(self, text: str) -> str:
        """The final text when the generation ends for another reason (EOS, length).

        A partial stop string at the very end is real text then; a trailing line with no
        content yet (held back in block mode) is dropped; the last line counts as ended for
        the repetition rule.
        """
        verdict = self.feed(text)
        if verdict.stop_at is not None:
            return text[: verdict.stop_at]
        repeats = self._scan(text + "\n")
        if repeats is not None and repeats.cut is not None:
            return text[: repeats.cut]
        return text[: len(text) - self._blank_tail(text)]

    def _scan(self, text: str) -> _RepeatScan | None:
        """The repetition rule's verdict, scanned once per call; None without the rule."""
        limit = self.rules.max_line_repeats
        return None if limit is None else _scan_repeats(text, limit)

    def _first_stop(self, text: str, repeats: _RepeatScan | None) -> int | None:
        cuts: list[int] = []
        for s in self.rules.stop_strings:
            i = text.find(s)
            if i >= 0:
                cuts.append(i)
        line_end = self._line_end(text)
        if line_end is not None:
            cuts.append(line_end)
        elif not self.rules.single_line and self.rules.block_indent is not None:
            dedent = self._dedent_cut(text)
            if dedent is not None:
                cuts.append(dedent)
        if repeats is not None and repeats.cut is not None:
            cuts.append(repeats.cut)
        loop = self._loop_cut(text)
        if loop is not None:
            cuts.append(loop)
        return min(cuts) if cuts else None

    def _loop_cut(self, text: str) -> int | None:
        """Where the text ends when a line has turned into a loop: on the first line,
        before the loop's first copy (what came before it stays); on a later line, before
        the newline that started that line (the block ends with the line before). Checked
        are the lines from the one that was last at the previous call on: the others were
        whole then and checked already (a token, or a remote engine's piece, may bring
        several newlines at once)."""
        limit = self.rules.max_line_cycle
        if limit is None:
            return None
        start = self._line_start if self._line_start <= len(text) else 0
        start = text.rfind("\n", 0, start) + 1 if start else 0  # at a line's start
        while True:
            nl = text.find("\n", start)
            end = len(text) if nl < 0 else nl
            covered = line_cycle(text[start:end])
            if covered >= limit:
                return end - covered if start == 0 else start - 1
            if nl < 0:
                self._line_start = start
                return None
            start = nl + 1

    def _line_end(self, text: str) -> int | None:
        """Where the first line ends, when the text must end there: always in single-line
        mode; under `line_unless_opens` unless that line opens a block."""
        if not (self.rules.single_line or self.rules.line_unless_opens):
            return None
        i = text.find("\n")
        if i < 0:
            return None
        if not self.rules.single_line and text[:i].rstrip().endswith(self.rules.line_unless_opens):
            return None
        return i

    def _dedent_cut(self, text: str) -> int | None:
        """Offset of the newline before the first complete-enough line that leaves the block."""
        assert self.rules.block_indent is not None
        limit = self.rules.block_indent
        if self.rules.indent_from_first_line:
            nl = text.find("\n")
            if nl < 0:
                return None  # the first line, which sets the block's indentation, goes on
            if text[:nl].strip():
                limit = max(1, _indent_width(text[:nl]))
        start = 0
        first = True
        while True:
            nl = text.find("\n", start)
            line = text[start:] if nl < 0 else text[start:nl]
            skip = first and self.rules.first_line_open
            if not skip and line.strip() and _indent_width(line) < limit:
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
