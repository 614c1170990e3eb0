"""Benchmarks: bert_jax against its peers, one run each, ratios."""
