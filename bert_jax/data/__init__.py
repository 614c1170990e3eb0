"""Data: corpora, pretraining examples, on-device masking and the loader.

The modules are imported lazily by their users (`from bert_jax.data import
corpora`) so that importing the package pulls in neither TFDS nor grain.
"""
