"""The benchmark's prompts: completion prompts built by the server's own completion path at
holes punched in held-out code, and chat prompts asking about held-out functions."""

from __future__ import annotations

import ast
import random
from dataclasses import dataclass
from typing import Literal

from lsp_llm.config import Settings
from lsp_llm.context.completion import plan_completion
from lsp_llm.context.prompts import CodeContext, EditorContext, chat_prompt
from lsp_llm.evaluation.holes import punch_holes
from lsp_llm.generation.tokens import TokenizerInfo

CaseKind = Literal["completion", "chat"]
QUESTIONS = (
    "What does this function do?",
    "How could this function be simplified?",
    "Write a unit test for this function.",
)


@dataclass(frozen=True)
class Case:
    kind: CaseKind
    name: str
    prompt_ids: tuple[int, ...]
    max_new_tokens: int


def completion_cases(
    info: TokenizerInfo,
    settings: Settings,
    sources: list[tuple[str, str]],
    count: int,
    max_new_tokens: int,
    seed: int = 0,
) -> list[Case]:
    """`count` completion prompts at line, mid-line and body holes, in that rotation."""
    per_kind = -(-count // 3)
    holes = punch_holes(sources, per_kind, seed)
    by_kind = [[h for h in holes if h.kind == k] for k in ("line", "midline", "body")]
    rotated = [h for group in zip(*by_kind, strict=False) for h in group]
    cases = []
    for hole in rotated[:count]:
        ctx = EditorContext(hole.text, hole.offset, "python", hole.path)
        plan = plan_completion(info, ctx, settings)
        name = f"{hole.kind} {hole.path}:{hole.line}"
        cases.append(Case("completion", name, plan.prompt.token_ids, max_new_tokens))
    return cases


def _functions(sources: list[tuple[str, str]], max_lines: int = 30) -> list[tuple[str, str]]:
    found = []
    for path, text in sources:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.split("\n")
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.end_lineno is not None:
                n = node.end_lineno - node.lineno + 1
                if 4 <= n <= max_lines:
                    body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
                    found.append((f"{path}:{node.lineno}", body))
    return found


def chat_cases(
    info: TokenizerInfo,
    settings: Settings,
    sources: list[tuple[str, str]],
    count: int,
    max_new_tokens: int,
    seed: int = 0,
) -> list[Case]:
    """`count` chat prompts: a question about a held-out function attached as code."""
    functions = _functions(sources)
    picked = random.Random(seed).sample(functions, min(count, len(functions)))
    context_tokens = info.budget(settings.chat.context_tokens, max_new_tokens)
    cases = []
    for i, (where, code) in enumerate(picked):
        question = QUESTIONS[i % len(QUESTIONS)]
        prompt = chat_prompt(
            info,
            [{"role": "user", "content": question}],
            system_prompt=settings.chat.system_prompt,
            context_tokens=context_tokens,
            code=CodeContext(code, language="python"),
        )
        cases.append(Case("chat", f"chat {where}", prompt.token_ids, max_new_tokens))
    return cases
