"""The generation contract: what every layer speaks and no implementation owns.

`types` (requests, stop rules, stream events), `backend` (the `Backend` protocol a local
model and a remote engine both implement, and what it serves), `tokens` (how a model's
tokenizer reads: FIM and control tokens, budgets), `budget` (counting and cutting text by
tokens), `stopping` (the stop rules every backend applies) and `streaming` (carrying a
request's events from the thread that makes them to their reader).

The server and `context/` build requests and read events through these; `engine/` and
`remote/` implement them. Nothing here imports torch, a model or another lsp_llm layer
but `config`.
"""
