"""The LSP side: pygls handlers, thin and async, over `context` and `engine`. No torch is
imported here; the model host loads the engine in a background thread."""
