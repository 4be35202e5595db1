"""lsp-llm: a language server that hosts a local code model.

Layers (docs/architecture.md; tests/test_layers.py keeps imports going one way): `server`
(LSP handlers, no torch) over `context` (prompts and post-processing, pure functions) over
`generation` (the contract: requests, events, the Backend protocol), which `engine` (the
local model and its inference thread) and `remote` (an engine over HTTP) implement.
"""

__version__ = "0.1.0"
