"""`lsp-llm eval`: holes punched in held-out code, scored for the model and for trivial
baselines, and speculative decoding measured in every mode."""
