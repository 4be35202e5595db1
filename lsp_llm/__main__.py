"""`python -m lsp_llm` is the same as the `lsp-llm` command."""

from lsp_llm.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
