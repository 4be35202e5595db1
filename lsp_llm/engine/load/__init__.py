"""Loading: a `model` setting resolved to a file or folder (`sources`, `catalogue`), GGUF
files mapped and served from their blocks or converted (`ggufmap`, `ggufmodel`, `gguf`),
and the model and its draft in memory (`loading`)."""
