"""The project's CPU kernels (`cpukernels.cpp`, built and bound by `native`) and the layers
that call them: GGUF block formats as the file holds them (`ggufblocks`), packed int8/int4
copies of float weights (`packedweights`), and compiled decoding steps (`compiled`). It
imports nothing else of the engine but the cache folder (`tests/test_layers.py`)."""
