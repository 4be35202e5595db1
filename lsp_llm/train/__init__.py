"""Building the bundled model pair: tokenizer, training data, training loop, evaluation.

Also used by the tests to build tiny random-weight models with the same conventions.
"""
