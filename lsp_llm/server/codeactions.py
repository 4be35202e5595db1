"""Model-backed code actions for every editor: add a docstring, fill in a stub's body,
rewrite the selection by an instruction. `textDocument/codeAction` only offers them (no
model work); the model runs in `codeAction/resolve`, or in `workspace/executeCommand` for
clients without resolve support, which then gets the edit through `workspace/applyEdit`."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace import TextDocument

from lsp_llm.context import actions
from lsp_llm.context.prompts import Prompt
from lsp_llm.server.app import LspLlmServer, RequestFailed
from lsp_llm.server.chat import plain
from lsp_llm.server.completion import language_of
from lsp_llm.server.wire import Action, ActionData, Version, structure, unstructure

logger = logging.getLogger(__name__)

APPLY = "lspLlm.applyAction"
REWRITE = "lspLlm.rewriteSelection"
KIND = types.CodeActionKind.RefactorRewrite
"""What the server advertises; each action has a kind of its own below it, so a client
picks one by kind (`refactor.rewrite.lspLlm.docstring`), never by its title."""
KINDS = {name: f"{KIND.value}.lspLlm.{name}" for name in ("docstring", "fillBody", "rewrite")}
TITLES = {
    "docstring": "lsp-llm: Add docstring",
    "fillBody": "lsp-llm: Fill in function body",
    "rewrite": "lsp-llm: Rewrite selection…",
}


def _resolves(ls: LspLlmServer) -> bool:
    doc = ls.client_capabilities.text_document
    support = doc.code_action.resolve_support if doc and doc.code_action else None
    return bool(support and "edit" in support.properties)


def offered(ls: LspLlmServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    doc = ls.document(params.text_document.uri)
    text = ls.text_of(doc)
    start = ls.offset(doc, params.range.start)
    end = ls.offset(doc, params.range.end)
    found: list[types.CodeAction] = []
    fn = actions.find_function(text, start, language_of(doc))
    kinds: list[Action] = []
    if fn is not None and not fn.has_docstring:
        kinds.append("docstring")
    if fn is not None and fn.is_stub:
        kinds.append("fillBody")
    for kind in kinds:
        version = None if doc.version is None else Version(doc.version)
        data = unstructure(ActionData(kind, doc.uri, start, version))
        action = types.CodeAction(title=TITLES[kind], kind=KINDS[kind], data=data)
        if not _resolves(ls):
            action.command = types.Command(
                title=TITLES[kind], command=APPLY, arguments=[action.data]
            )
        found.append(action)
    if end > start:
        # The instruction comes from the client (it prompts the user): an extra argument.
        found.append(
            types.CodeAction(
                title=TITLES["rewrite"],
                kind=KINDS["rewrite"],
                command=types.Command(
                    title=TITLES["rewrite"], command=REWRITE, arguments=[doc.uri, params.range]
                ),
            )
        )
    only = params.context.only
    if only:
        found = [a for a in found if any(str(a.kind).startswith(str(k)) for k in only)]
    return found


ACTION_NEW_TOKENS = 160
"""New tokens for a docstring; also what the action's prompt budget leaves room for."""


async def _generate(ls: LspLlmServer, prompt: Prompt, max_new_tokens: int) -> str:
    engine = await ls.engine()
    done = await ls.generate(engine, actions.action_request(prompt, max_new_tokens, ls.settings))
    return done.text


def _workspace_edit(
    ls: LspLlmServer, doc: TextDocument, text: str, rep: actions.Replacement
) -> types.WorkspaceEdit:
    edit = types.TextEdit(range=ls.range(text, rep.start, rep.end), new_text=rep.text)
    caps = ls.client_capabilities.workspace
    if caps and caps.workspace_edit and caps.workspace_edit.document_changes:
        ident = types.OptionalVersionedTextDocumentIdentifier(uri=doc.uri, version=doc.version)
        return types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=ident, edits=[edit])]
        )
    return types.WorkspaceEdit(changes={doc.uri: [edit]})


async def compute_edit(ls: LspLlmServer, data: Any) -> types.WorkspaceEdit:
    offer = structure(plain(data), ActionData, "code action data")
    doc = ls.document(offer.uri)
    if offer.version is not None and doc.version != offer.version:
        raise RequestFailed(
            "lsp-llm: the document changed since the action was offered; ask for code actions again"
        )
    text = ls.text_of(doc)
    fn = actions.find_function(text, min(offer.start, len(text)), language_of(doc))
    if fn is None:
        raise RequestFailed("lsp-llm: no function at the cursor")
    await ls.engine()
    info = ls.tokens
    budget = info.budget(ls.settings.completion.context_tokens, ACTION_NEW_TOKENS)
    if offer.action == "docstring":
        prompt = actions.docstring_prompt(info, text, fn, budget)
        reply = await _generate(ls, prompt, ACTION_NEW_TOKENS)
        rep = actions.docstring_edit(text, fn, reply, prompt.kind != "chat")
    else:
        prompt = actions.fill_body_prompt(info, text, fn, budget)
        reply = await _generate(ls, prompt, ls.settings.chat.max_new_tokens)
        rep = actions.fill_body_edit(text, fn, reply, prompt.kind != "chat")
    if rep is None:
        raise RequestFailed("lsp-llm: the model produced nothing usable for this action")
    return _workspace_edit(ls, doc, text, rep)


async def rewrite_edit(ls: LspLlmServer, args: list[Any]) -> types.WorkspaceEdit:
    args = plain(args)
    if len(args) < 3 or not isinstance(args[2], str) or not args[2].strip():
        raise JsonRpcInvalidParams(
            f"{REWRITE} takes [uri, range, instruction]; the client "
            "must ask the user for the instruction"
        )
    uri, instruction = args[0], args[2]
    doc = ls.document(structure(uri, str, f"{REWRITE}: the first argument"))
    rng = structure(args[1], types.Range, f"{REWRITE}: the second argument")
    text = ls.text_of(doc)
    start, end = sorted((ls.offset(doc, rng.start), ls.offset(doc, rng.end)))
    await ls.engine()
    selected = text[start:end]

    prompt = actions.chat_action_prompt(
        ls.tokens,
        instruction,
        selected,
        ls.tokens.budget(ls.settings.chat.context_tokens, ls.settings.chat.max_new_tokens),
        language_of(doc),
    )
    reply = await _generate(ls, prompt, ls.settings.chat.max_new_tokens)
    rep = actions.rewrite_edit(start, end, selected, reply)
    if rep is None:
        raise RequestFailed("lsp-llm: the model produced no code for this rewrite")
    return _workspace_edit(ls, doc, text, rep)


def register(server: LspLlmServer) -> None:
    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[KIND], resolve_provider=True),
    )
    async def code_action(
        ls: LspLlmServer, params: types.CodeActionParams
    ) -> list[types.CodeAction]:
        return offered(ls, params)

    @server.feature(types.CODE_ACTION_RESOLVE)
    async def resolve(ls: LspLlmServer, action: types.CodeAction) -> types.CodeAction:
        action.edit = await compute_edit(ls, action.data)
        return action

    async def apply(ls: LspLlmServer, edit: types.WorkspaceEdit, label: str) -> dict[str, Any]:
        result = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=label)
        )
        return {"applied": bool(result and result.applied)}

    @server.command(APPLY)
    async def apply_action(ls: LspLlmServer, *args: Any) -> dict[str, Any]:
        data = args[0] if args else None
        if isinstance(data, list | tuple) and data:
            data = data[0]
        edit = await compute_edit(ls, data)
        return await apply(ls, edit, "lsp-llm")

    @server.command(REWRITE)
    async def rewrite(ls: LspLlmServer, *args: Any) -> dict[str, Any]:
        if len(args) == 1 and isinstance(args[0], list | tuple):
            args = tuple(args[0])
        edit = await rewrite_edit(ls, list(args))
        return await apply(ls, edit, "lsp-llm: rewrite selection")
