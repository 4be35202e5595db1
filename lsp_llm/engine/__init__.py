"""The local engine: a model loaded in this process and its one inference thread.

It knows nothing of LSP. Three parts:

- `load/`: what a `model` setting names and how it becomes a model in memory (the
  catalogue, sources, GGUF files mapped or converted, the draft's vocabulary);
- the scheduling core, here: the inference thread and its lanes (`worker`), the decoding
  loop with stop rules, healing and speculation (`decoding`, `drafting`, `healing`,
  `detok`), the KV cache reused across requests (`kvcache`), the lean forward pass
  (`leanforward`) and its layers as one call into the kernels (`nativelayers`);
- `cpu/`: the project's CPU kernels (`cpukernels.cpp`, `native`) and the layers built on
  them: GGUF blocks, packed int8/int4 weights, `torch.compile`d steps. It imports nothing
  else of the engine.

Importing this package does not import torch; the modules that need it do so themselves.
"""
