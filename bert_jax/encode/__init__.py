"""Encode texts with a bert_jax checkpoint: vectors for a corpus, or arrays.

  from bert_jax.encode import load_encoder, encode_to_file
  encoder = load_encoder('ckpt/minilm', max_length=128)
  encoder(['a sentence', ('a question', 'its passage')], pooling='mean')
  encode_to_file(encoder, open('corpus.txt'), 'vectors.npy', pooling='mean')

  python -m bert_jax.encode --checkpoint DIR --input corpus.txt \\
      --output vectors.npy --pooling mean

Modules: ``encoder`` (the in-memory ``Encoder``: a list in, all arrays out),
``packed`` (several texts per row, pooled on device), ``stream`` (the
producer/consumer pipeline), ``writers`` (streaming .npy and shard folders),
``to_file`` (outputs, resume), ``inputs`` (files, globs, TFDS), ``cli``.
"""

from bert_jax.encode.cli import PAIR_SEPARATOR, build_parser, main, parse_texts
from bert_jax.encode.encoder import (MIN_LENGTH_BUCKET, POOLING, Encoder,
                                     load_encoder)
from bert_jax.encode.to_file import encode_to_file

__all__ = ['Encoder', 'MIN_LENGTH_BUCKET', 'PAIR_SEPARATOR', 'POOLING',
           'build_parser', 'encode_to_file', 'load_encoder', 'main',
           'parse_texts']
