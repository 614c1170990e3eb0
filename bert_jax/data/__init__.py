"""Data, by flow: `pretrain/` (corpus -> examples -> shards) and `finetune/`
(task readers), with what both share here: the grain `loader`, length
buckets, local text files and TFDS sources.

This layer sits on `bert_jax.text` and imports nothing above it. The modules
are imported by their users (`from bert_jax.data.pretrain import corpora`),
not here, so that importing the package pulls in neither TFDS nor grain.
"""
