"""`lsp-llm bench`: our engine side by side with transformers `generate()` and llama.cpp,
plus the latencies an editor feels (cancel, re-request after an edit, protocol overhead)."""
