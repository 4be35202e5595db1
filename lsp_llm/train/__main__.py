"""`python -m lsp_llm.train`: train the bundled model pair (see lsp_llm/train/run.py)."""

from lsp_llm.train.run import main

if __name__ == "__main__":
    raise SystemExit(main())
