"""The `lsp-llm` subcommands, one module each: `add_parser(sub)` declares its arguments
and `run(args) -> int` does it (importing what it needs only then, so `lsp-llm serve`
starts without loading the tooling). `lsp_llm.cli` puts them together."""
