"""Benchmarks of the corpus-scale paths: prepare (vs Hugging Face datasets),
the loader over prepared shards, encode (vs sentence-transformers)."""
