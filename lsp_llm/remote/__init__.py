"""The remote backend: generation by an inference engine the user already runs (vLLM, TGI,
llama.cpp's server, Ollama) over its OpenAI-compatible HTTP API. It knows nothing of LSP;
the server holds it as a `backend.Backend`, like the local engine.
"""
