"""Contracts between the engine and its callers: requests, stop rules, stream events.

Plain dataclasses with no torch, so `context` and `server` can build requests and read
events without importing the model stack.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

MAX_HEAL_TOKENS = 4
"""A request's `heal` text is at most this many tokens of its prompt (each costs the engine
a forward pass to spell again); a backend may allow that many more new tokens for it."""

SpeculationMode = Literal["auto", "off", "draft", "promptLookup"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
Lane = Literal["interactive", "background"]
"""How urgent a request is. An `interactive` one (a completion, a code action: someone is
waiting for it keystroke by keystroke) goes before `background` work (a chat), and a
local model pauses a running chat between two forward passes to answer it. Each lane
keeps its own KV cache, so a chat does not evict the cache the next keystroke reuses."""


@dataclass(frozen=True)
class StopRules:
    """When a generation ends, checked on every accepted token.

    `single_line`: stop at the first newline (the newline is not emitted).
    `block_indent`: in multi-line mode, stop before the first non-blank line whose
    indentation is narrower than this many columns (leaving the cursor's block).
    `first_line_open`: the first generated line continues the cursor's line, so the dedent
    rule applies from the second line on.
    `max_line_repeats`: stop once the same line, or the same block of a few lines, has come
    this many times in a row (blank lines aside); the text keeps the first copy. A small
    model caught in a loop then ends at once instead of filling its token budget. Only
    lines that cannot be cut any more are streamed while it applies.
    `max_line_cycle`: stop once the line being written ends with one piece of text (up to
    32 characters) repeated back to back, at least 4 times and over this many characters
    (`Dict[str, Dict[str, Dict[str, …`). On the first line the text ends before the loop's
    first copy; on a later line that line is dropped and the text ends with the line
    before it (as a block cut by the token budget loses its unfinished line). A model
    caught in a loop inside a line then ends at once instead of filling its token budget,
    and shows none of the loop. A run of one punctuation character (`-----`, `=====`) is
    a separator, not a loop. While it applies only whole lines are streamed.
    `line_unless_opens`: see below.
    `indent_from_first_line`: the first line brings its own indentation (the prompt ended at
    the start of the cursor's line), and the block is that line's: the dedent rule uses the
    first line's indentation instead of `block_indent`.
    """

    stop_token_ids: frozenset[int] = frozenset()
    stop_strings: tuple[str, ...] = ()
    single_line: bool = False
    block_indent: int | None = None
    first_line_open: bool = True
    max_line_repeats: int | None = None
    max_line_cycle: int | None = None
    indent_from_first_line: bool = False
    line_unless_opens: tuple[str, ...] = ()
    """When set (in block mode), stop at the first newline unless the first line ends with
    one of these (`:`, `{`): inside a body whose next line is code, one line is wanted,
    and only a line that opens a block goes on as a block."""


@dataclass(frozen=True)
class Sampling:
    """Greedy when `temperature` is 0; otherwise temperature and nucleus (top-p) sampling."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0


@dataclass(frozen=True)
class Speculation:
    mode: SpeculationMode = "auto"
    num_tokens: int = 5


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """One generation. `group` names a superseding group: a newer request of the same
    group (e.g. inline completion of one document) cancels the older ones."""

    prompt_ids: tuple[int, ...]
    max_new_tokens: int = 128
    stop: StopRules = field(default_factory=StopRules)
    sampling: Sampling = field(default_factory=Sampling)
    speculation: Speculation = field(default_factory=Speculation)
    group: str | None = None
    reuse_prefix: bool = True
    """Reuse the KV caches' prefix shared with the previous request; False starts cold
    (benchmarks compare engines without carried-over state)."""
    heal: str = ""
    """Text cut from the end of the prompt to a token boundary (token healing): the first
    generated tokens are constrained to spell it again, and it is left out of the text that
    is returned, streamed and checked by the stop rules."""
    prompt_text: str = ""
    """The same prompt as text (special tokens by name), for engines that take text."""
    messages: tuple[ChatMessage, ...] = ()
    """For a chat prompt, its turns: an engine with a chat endpoint applies its own
    template to these instead of reading `prompt_ids`."""
    lane: Lane = "interactive"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Timings:
    queue_ms: float = 0.0
    first_token_ms: float | None = None
    total_ms: float = 0.0
    tokens_per_second: float = 0.0


@dataclass
class DecodeStats:
    """What the decoding loop did: how the engine is measured and tested."""

    target_forwards: int = 0
    prefill_forwards: int = 0
    """Of `target_forwards`, those that fed the prompt (the last one yields the first token)."""
    draft_forwards: int = 0
    tokens_fed: int = 0
    """Prompt and generated tokens fed to the target model (prefix reuse lowers it)."""
    reused_prefix_tokens: int = 0
    drafted_tokens: int = 0
    accepted_draft_tokens: int = 0
    forwards_after_cancel: int = 0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted_draft_tokens / self.drafted_tokens if self.drafted_tokens else 0.0


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Done:
    reason: FinishReason
    text: str
    usage: Usage
    timings: Timings
    stats: DecodeStats
    token_ids: tuple[int, ...] = ()
    """The accepted generated tokens (the stop token excluded)."""


def finished(
    reason: FinishReason,
    text: str,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    submitted: float,
    started: float | None = None,
    first: float | None = None,
    decoded: int | None = None,
    stats: DecodeStats | None = None,
    token_ids: tuple[int, ...] = (),
) -> Done:
    """A generation's `Done`, its usage and timings from the moments it went through
    (`time.perf_counter()` seconds): submitted, started (it left the queue; default:
    submitted), its first visible text, and now. Speed counts `decoded` tokens (default:
    the completion's) over the time it ran. The one place every backend builds its end."""
    now = time.perf_counter()
    began = submitted if started is None else started
    ran = now - began
    made = completion_tokens if decoded is None else decoded
    timings = Timings(
        queue_ms=(began - submitted) * 1000,
        first_token_ms=None if first is None else (first - submitted) * 1000,
        total_ms=(now - submitted) * 1000,
        tokens_per_second=made / ran if ran > 0 else 0.0,
    )
    return Done(
        reason,
        text,
        Usage(prompt_tokens, completion_tokens),
        timings,
        stats if stats is not None else DecodeStats(),
        token_ids,
    )


@dataclass(frozen=True)
class GenerationError:
    message: str


Event = TextDelta | Done | GenerationError
