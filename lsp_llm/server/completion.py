"""Inline completion (ghost text) and classic completion: one suggestion from the model,
cleaned by `context.postprocess`, shaped for each protocol method."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument

from lsp_llm.context.completion import plan_completion
from lsp_llm.context.languages import language_id
from lsp_llm.context.postprocess import Suggestion
from lsp_llm.context.prompts import EditorContext
from lsp_llm.server.app import LspLlmServer
from lsp_llm.server.neighbours import changed_lines

logger = logging.getLogger(__name__)

WORD_TAIL = re.compile(r"[A-Za-z0-9_]*$")
BINARY_WINDOW = 4096


@dataclass
class Placed:
    text: str
    offset: int
    suggestion: Suggestion


def language_of(doc: TextDocument) -> str:
    """The document's language id (`context.languages.language_id`)."""
    return language_id(doc.language_id, doc.uri)


async def suggest(ls: LspLlmServer, uri: str, position: types.Position) -> Placed | None:
    doc = ls.document(uri)
    text = ls.text_of(doc)
    offset = ls.offset(doc, position)
    window = text[max(0, offset - BINARY_WINDOW) : offset + BINARY_WINDOW]
    if "\x00" in window:
        return None  # binary content: nothing sensible to suggest
    before, after = text[:offset], text[offset:]
    typed_ahead = ls.typeahead.answer(uri, before, after)
    if typed_ahead is not None:  # the user typed what was suggested: no model call
        return Placed(text, offset, typed_ahead)
    engine = await ls.engine()
    language = language_of(doc)
    ctx = EditorContext(text, offset, language, doc.path)
    if ls.settings.completion.extra_context:
        ctx = with_extra(ls, ctx, uri)
    plan = plan_completion(ls.tokens, ctx, ls.settings, group=f"complete:{ls.session}:{uri}")
    req = plan.request
    if not (req.prompt_ids or req.prompt_text or req.messages):
        return None  # nothing to continue from (an empty file, no tokenizer to start one)
    done = await ls.generate(engine, plan.request)
    logger.debug(
        "completion %s: %r (%s, %.0f ms)", uri, done.text, done.reason, done.timings.total_ms
    )
    if done.reason == "cancelled":
        return None  # superseded by a newer request for this document
    cleaned = plan.suggestion(done.text, done.reason)
    if cleaned is None:
        return None
    if not cleaned.replace_before:  # typing follows an insertion, not a re-indented line
        ls.typeahead.remember(uri, before, after, cleaned)
    return Placed(text, offset, cleaned)


def with_extra(ls: LspLlmServer, ctx: EditorContext, uri: str) -> EditorContext:
    """`ctx` with the extra context from other files (`server.neighbours`)."""
    folders = ls.folders()
    documents = {
        key: (Path(d.path), d.source) for key, d in ls.workspace.text_documents.items() if d.path
    }
    key = unquote(uri)
    s = ls.settings.completion
    budget = int(ls.tokens.budget(s.context_tokens, s.max_new_tokens) * s.extra_context_share)
    chunks = ls.neighbours.extra_for(
        key,
        ctx.text,
        ctx.offset,
        folders=folders,
        documents=documents,
        read_disk=ls.connection.reads_disk,
        tokenizer=ls.tokens.tokenizer,
        budget=budget,
        language=ctx.language,
    )
    if not chunks:
        return ctx
    place = ls.neighbours.place(Path(ctx.path), folders) if ctx.path else None
    return replace(
        ctx,
        extra=chunks,
        relative_path=place.relative if place else None,
        repo=place.repo if place else "",
    )


def _latest(ls: LspLlmServer, key: str) -> tuple[Path, str] | None:
    """An open document's path and text (by its percent-decoded URI), if it is a file."""
    doc = ls.workspace.text_documents.get(key)
    return (Path(doc.path), doc.source) if doc is not None and doc.path else None


def register(server: LspLlmServer) -> None:
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LspLlmServer, params: types.DidOpenTextDocumentParams) -> None:
        uri = unquote(params.text_document.uri)
        ls.neighbours.opened(uri, _latest(ls, uri))

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LspLlmServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = unquote(params.text_document.uri)
        edits = changed_lines(ls.neighbours.ring, uri, params)
        ls.neighbours.changed(uri, edits, _latest(ls, uri))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LspLlmServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.neighbours.closed(unquote(params.text_document.uri), ls.folders())

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        ls: LspLlmServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        placed = await suggest(ls, params.text_document.uri, params.position)
        if placed is None:
            return types.InlineCompletionList(items=[])
        sug = placed.suggestion
        # A re-indented line replaces the whitespace before the cursor (as Copilot does):
        # editors show the text after the cursor and re-indent the line on accept.
        start = placed.offset - sug.replace_before
        rng = ls.range(placed.text, start, placed.offset + sug.replace_chars)
        return types.InlineCompletionList(
            items=[types.InlineCompletionItem(insert_text=sug.text, range=rng)]
        )

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[".", "(", " ", "\n"]),
    )
    async def completion(ls: LspLlmServer, params: types.CompletionParams) -> types.CompletionList:
        placed = await suggest(ls, params.text_document.uri, params.position)
        if placed is None:
            return types.CompletionList(is_incomplete=True, items=[])
        sug = placed.suggestion
        # Start the edit at the word being typed, so clients that replace the word
        # (Neovim's omnifunc, Emacs) keep what the user already typed.
        word = WORD_TAIL.search(placed.text[: placed.offset])
        start = placed.offset - (len(word.group(0)) if word else 0)
        new_text = placed.text[start : placed.offset] + sug.text
        if sug.replace_before:  # a re-indented line: the edit starts at the line's start
            start, new_text = placed.offset - sug.replace_before, sug.text
        rng = ls.range(placed.text, start, placed.offset + sug.replace_chars)
        first_line = new_text.split("\n", 1)[0].strip() or new_text.strip().split("\n", 1)[0]
        label = first_line + (" …" if "\n" in sug.text else "")
        filter_text = new_text.split("\n", 1)[0]
        if sug.replace_before:  # clients filter by the text the edit replaces (whitespace)
            filter_text = placed.text[start : placed.offset] + filter_text.lstrip()
        item = types.CompletionItem(
            label=label,
            kind=types.CompletionItemKind.Text,
            detail="lsp-llm",
            filter_text=filter_text,
            sort_text="0",
            insert_text_format=types.InsertTextFormat.PlainText,
            text_edit=types.TextEdit(range=rng, new_text=new_text),
            documentation=types.MarkupContent(types.MarkupKind.Markdown, f"```\n{new_text}\n```"),
        )
        return types.CompletionList(is_incomplete=True, items=[item])
