"""Data: corpora, pretraining examples and objectives, task readers (GLUE,
CoNLL, SQuAD, local files), on-device masking and the loader.

This layer sits on `bert_jax.text` and imports nothing above it. The modules
are imported by their users (`from bert_jax.data import corpora`), not here,
so that importing the package pulls in neither TFDS nor grain.
"""
