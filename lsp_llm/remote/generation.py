"""One remote generation as the server sees it: the request body sent to the engine, and
the engine's streamed text turned into our events under our own rules (plain logic, no
I/O). The engine cannot heal tokens or apply our stop rules, so:

- token healing (`GenerationRequest.heal`, text cut from the prompt's end) is kept only
  for a cut of whitespace (indentation, a space after `=`): the prompt is sent without it,
  and the reply's leading whitespace, whatever its width, stands for what the user already
  typed and is dropped. Any other cut (a partial word) goes back on the prompt: unguided,
  the engine would too often write something else than what the user began to type;
- `StopChecker` runs on every piece, holds back what may still be cut, and ends the
  generation where a rule fires (the caller then closes the stream so the engine stops).
"""

from __future__ import annotations

from typing import Any

from lsp_llm.generation.stopping import StopChecker
from lsp_llm.generation.types import MAX_HEAL_TOKENS, GenerationRequest

MAX_STOP_SEQUENCES = 4
"""Engines cap stop sequences (OpenAI and TGI at 4): ours are checked here anyway, these
only let the engine stop sooner."""


def healed_whitespace(request: GenerationRequest) -> str:
    """The part of the request's token healing a remote engine keeps (see above)."""
    return request.heal if not request.heal.strip() else ""


def request_body(request: GenerationRequest, model: str | None) -> tuple[str, dict[str, Any]]:
    """The API path and JSON body for `request`: its turns to the chat endpoint, else its
    text prompt to the completions endpoint."""
    heal = healed_whitespace(request)
    stops = [s for s in request.stop.stop_strings if s not in heal]
    if request.stop.single_line and "\n" not in heal:
        stops.append("\n")
    body: dict[str, Any] = {
        "max_tokens": request.max_new_tokens + (MAX_HEAL_TOKENS if heal else 0),
        "temperature": max(0.0, request.sampling.temperature),
        "top_p": request.sampling.top_p,
        "stream": True,
    }
    if stops:
        body["stop"] = stops[:MAX_STOP_SEQUENCES]
    if request.sampling.seed is not None:
        body["seed"] = request.sampling.seed
    if model:
        body["model"] = model
    if request.messages:
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        return "/chat/completions", body
    if not request.prompt_text:
        raise ValueError("a remote engine needs the prompt as text (GenerationRequest.prompt_text)")
    body["prompt"] = request.prompt_text + request.heal[len(heal) :]
    return "/completions", body


class TextRun:
    """The text of one generation as the engine streams it."""

    def __init__(self, request: GenerationRequest) -> None:
        self.heal = healed_whitespace(request)
        self.checker = StopChecker(request.stop)
        self.raw = ""
        self.emitted = 0
        self.final: str | None = None
        """Set once a rule ended the text (the stream should be closed)."""
        self.pieces = 0

    @property
    def visible(self) -> str:
        """The text past the healed whitespace (all of it when nothing was healed)."""
        if not self.heal:
            return self.raw
        return self.raw.lstrip(" \t\n" if "\n" in self.heal else " \t")

    def feed(self, piece: str) -> str:
        """Take the next piece of the engine's text; return what may be shown now."""
        if self.final is not None or not piece:
            return ""
        self.pieces += 1
        self.raw += piece
        if self.heal and not self.raw.strip():
            return ""  # only whitespace so far: it may all be the healed indentation
        visible = self.visible
        verdict = self.checker.feed(visible)
        upto = verdict.emit_upto
        if verdict.stop_at is not None:
            self.final = visible[: verdict.stop_at]
            upto = verdict.stop_at
        delta = visible[self.emitted : upto] if upto > self.emitted else ""
        self.emitted = max(self.emitted, upto)
        return delta

    def finish(self) -> tuple[str, str]:
        """The final text, and what is left of it to show, when the engine ended the
        generation itself (or a rule did)."""
        if self.final is None:
            self.final = self.checker.finish(self.visible)
        rest = self.final[self.emitted :]
        self.emitted = len(self.final)
        return self.final, rest
