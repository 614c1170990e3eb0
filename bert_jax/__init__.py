"""bert_jax: BERT from scratch in JAX/Flax (linen)."""

__version__ = '0.1.0'
