"""lsp-llm: a language server that hosts a local code model.

Layers (see README): `server` (LSP handlers, no torch) over `context` (prompts and
post-processing, pure functions) over `engine` (model loading and the inference thread).
"""

__version__ = "0.1.0"
