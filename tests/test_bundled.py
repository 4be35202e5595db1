"""The bundled model pair ships inside the package and loads with no network."""

from __future__ import annotations

from lsp_llm.config import Settings
from lsp_llm.context.prompts import EditorContext, chat_prompt, completion_prompt
from lsp_llm.engine.load.loading import load
from lsp_llm.engine.worker import Engine
from lsp_llm.generation.tokens import TokenizerInfo
from lsp_llm.generation.types import GenerationRequest


def test_bundled_pair_loads_offline_and_answers():
    loaded = load(Settings(model="bundled"))
    assert loaded.name == "bundled" and loaded.draft_name == "bundled-draft" and loaded.demo
    target = sum(p.numel() for p in loaded.model.parameters())
    draft = sum(p.numel() for p in loaded.draft_model.parameters())
    assert target <= 30_000_000 and draft * 5 <= target
    info = TokenizerInfo(loaded.tokenizer)
    assert info.fim is not None and info.has_template
    engine = Engine(loaded)
    try:
        text = "import os\n\n\ndef list_python_files(folder):\n    "
        prompt = completion_prompt(info, EditorContext(text, len(text)), context_tokens=512)
        done = engine.generate(GenerationRequest(prompt.token_ids, 32, prompt.stop))
        assert done.text.strip() and "\ufffd" not in done.text
        # Stays inside the function body (dedent stop rule) and looks like Python code.
        assert all(not ln.strip() or ln.startswith("    ") for ln in done.text.split("\n")[1:])
        chat = chat_prompt(
            info,
            [{"role": "user", "content": "What does os.path.join do?"}],
            system_prompt=Settings().chat.system_prompt,
            context_tokens=512,
        )
        reply = engine.generate(GenerationRequest(chat.token_ids, 48, chat.stop))
        assert reply.text.strip()
    finally:
        engine.close()
