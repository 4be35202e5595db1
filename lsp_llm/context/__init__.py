"""Editor context to prompts, and completions back to clean edits: pure functions over
text and a tokenizer (no torch, no LSP), the easiest layer to test."""
