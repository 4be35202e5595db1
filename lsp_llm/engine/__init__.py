"""The engine: model loading, one inference thread, streaming, cancellation, speculation.

It knows nothing of LSP. Importing this package does not import torch; the modules that
need it (`loading`, `decoding`, `worker`) do so themselves.
"""
