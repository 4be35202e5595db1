"""lsp-llm: a language server that hosts a local code model.

Layers (docs/architecture.md; tests/test_layers.py keeps imports going one way): `server`
(LSP handlers, no torch) over `context` (prompts and post-processing, pure functions) over
`generation` (the contract: requests, events, the Backend protocol), which `engine` (the
local model and its inference thread) and `remote` (an engine over HTTP) implement.
"""

from lsp_llm.spinwaits import shorten_spin_waits

shorten_spin_waits()  # before torch loads OpenMP (spinwaits.py says why)

__version__ = "0.1.0"
