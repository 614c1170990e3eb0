"""Tests of bert_jax.data.pretrain.examples (BERT's create_pretraining_data)."""

import numpy as np
import pytest

from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import objectives
from bert_jax.data.pretrain import examples as pretraining

L = 32


@pytest.fixture(scope='module')
def token_docs(tiny_corpus_path, fake_tokenizer):
  docs = list(corpora.load_corpus(tiny_corpus_path))
  return pretraining.documents_to_token_docs(docs, fake_tokenizer)


def _make(token_docs, objective, **kwargs):
  kwargs = {'max_seq_length': L, 'short_seq_prob': 0.1, 'dupe_factor': 3,
            'seed': 0, 'cls_id': 2, 'sep_id': 3, 'pad_id': 0, **kwargs}
  return pretraining.create_examples(token_docs, objective=objective, **kwargs)


def _find(needle, token_docs):
  """(document, start) of every place a token run occurs in the corpus."""
  hits = []
  for d, doc in enumerate(token_docs):
    stream = [t for ids, _ in doc for t in ids]
    for start in range(len(stream) - len(needle) + 1):
      if stream[start:start + len(needle)] == needle:
        hits.append((d, start))
  return hits


def _segments(ex, row):
  """Token lists of A and B of one example row."""
  ids = ex['input_ids'][row][ex['attention_mask'][row] == 1].tolist()
  types = ex['token_type_ids'][row][ex['attention_mask'][row] == 1]
  n_a = int((types == 0).sum())
  return ids[1:n_a - 1], ids[n_a:-1]


@pytest.mark.parametrize('objective', objectives.NAMES)
def test_layout(token_docs, objective):
  ex = _make(token_docs, objective)
  n = len(ex['input_ids'])
  assert n > 50
  assert set(ex) == set(pretraining.FEATURES)
  for k, v in ex.items():
    assert v.dtype == np.int32 and v.shape == ((n, L) if k != 'nsp_label'
                                               else (n,)), k
  real = ex['attention_mask'] == 1
  lengths = real.sum(1)
  # Real tokens first, then padding.
  np.testing.assert_array_equal(real, np.arange(L) < lengths[:, None])
  assert (ex['input_ids'][~real] == 0).all()
  assert (ex['token_type_ids'][~real] == 0).all()
  assert (ex['input_ids'][:, 0] == 2).all()
  assert (ex['input_ids'][np.arange(n), lengths - 1] == 3).all()
  is_special = np.isin(ex['input_ids'], [0, 2, 3])
  assert ((ex['word_ids'] == -1) == is_special).all()
  for row in range(n):
    words = ex['word_ids'][row][ex['word_ids'][row] >= 0]
    # Word ids count up from 0 in steps of 0 (same word) or 1 (next word).
    assert words[0] == 0 and set(np.diff(words)) <= {0, 1}
  if not objectives.get(objective).pairs:
    assert (ex['token_type_ids'] == 0).all() and (ex['nsp_label'] == 0).all()
    # Rows run on across documents, so only short targets leave padding.
    assert pretraining.padding_fraction(ex) < 0.1
  else:
    # [CLS] A [SEP] B [SEP]: exactly two [SEP]s, types 0 then 1.
    assert ((ex['input_ids'] == 3).sum(1) == 2).all()
    for row in range(n):
      a, b = _segments(ex, row)
      assert a and b and 3 not in a + b
    # Above one half: a chunk of one sentence always gets a random B (NSP)
    # or B from another document (SOP, as ALBERT), and at L=32 many do.
    assert 0.4 < ex['nsp_label'].mean() < 0.85


def test_nsp_pairs_come_from_the_corpus_as_labelled(token_docs):
  ex = _make(token_docs, 'mlm_nsp', max_seq_length=64)
  checked = {0: 0, 1: 0}
  for row in range(len(ex['input_ids'])):
    a, b = _segments(ex, row)
    hits_a, hits_b = _find(a, token_docs), _find(b, token_docs)
    assert hits_a and hits_b, row  # Both are runs of some document.
    label = int(ex['nsp_label'][row])
    if label == 0:  # B comes after A in the same document.
      assert any(da == db and sb >= sa + len(a)
                 for da, sa in hits_a for db, sb in hits_b), row
    else:  # B comes from another document.
      assert any(da != db for da, _ in hits_a for db, _ in hits_b), row
    checked[label] += 1
  assert min(checked.values()) > 20


def test_sop_pairs_are_in_order_or_swapped(token_docs):
  ex = _make(token_docs, 'mlm_sop', max_seq_length=64)
  swapped = 0
  for row in range(len(ex['input_ids'])):
    a, b = _segments(ex, row)
    hits_a, hits_b = _find(a, token_docs), _find(b, token_docs)
    in_order = any(da == db and sb >= sa + len(a)
                   for da, sa in hits_a for db, sb in hits_b)
    if ex['nsp_label'][row] == 0:
      assert in_order, row
    else:
      swapped += any(da == db and sa >= sb + len(b)
                     for da, sa in hits_a for db, sb in hits_b)
  assert swapped > 20


def test_deterministic_for_a_seed(token_docs):
  one, two = _make(token_docs, 'mlm_nsp'), _make(token_docs, 'mlm_nsp')
  for k in one:
    np.testing.assert_array_equal(one[k], two[k])
  other = _make(token_docs, 'mlm_nsp', seed=1)
  assert (other['input_ids'].shape != one['input_ids'].shape or
          (other['input_ids'] != one['input_ids']).any())


def test_dupe_factor_and_short_sequences(token_docs):
  once = _make(token_docs, 'mlm_nsp', dupe_factor=1)
  thrice = _make(token_docs, 'mlm_nsp', dupe_factor=3)
  assert 2.5 < len(thrice['input_ids']) / len(once['input_ids']) < 3.5
  full = _make(token_docs, 'mlm', short_seq_prob=0.0)
  assert pretraining.padding_fraction(full) < 0.02  # Only the last row pads.
  short = _make(token_docs, 'mlm', short_seq_prob=1.0)
  assert pretraining.padding_fraction(short) > 0.3


def test_documents_to_token_docs_drops_empty(fake_tokenizer):
  docs = [['Hello there world.', '', '!!'], [''], ['Another one here.']]
  token_docs = pretraining.documents_to_token_docs(docs, fake_tokenizer)
  assert len(token_docs) == 2 and [len(d) for d in token_docs] == [2, 1]
  ids, words = token_docs[0][0]
  assert (ids, words) == fake_tokenizer.encode_words('Hello there world.')


def test_bad_arguments_fail_loudly(token_docs):
  with pytest.raises(ValueError,
                     match=r"data.objective='nsp'.*\('mlm', 'mlm_nsp', "
                     r"'mlm_sop'\)"):
    _make(token_docs, 'nsp')
  with pytest.raises(ValueError, match='max_seq_length=4'):
    _make(token_docs, 'mlm_nsp', max_seq_length=4)
  with pytest.raises(ValueError, match='no non-empty documents'):
    _make([], 'mlm')


def test_builtin_corpus_with_real_vocab_pads_little(real_vocab_path):
  text = pytest.importorskip('bert_jax.text')
  tok = text.load_tokenizer(real_vocab_path)
  docs = list(corpora.load_corpus('builtin'))
  token_docs = pretraining.documents_to_token_docs(docs, tok)
  ex = pretraining.create_examples(
      token_docs, max_seq_length=128, objective='mlm_nsp', seed=0,
      cls_id=tok.cls_id, sep_id=tok.sep_id, pad_id=tok.pad_id)
  assert len(ex['input_ids']) > 3000
  # Measured figures are in docs/pretraining.md; guard against regressions.
  # The builtin corpus is the running Python's own documentation, so it
  # differs by Python build (Debian's python3 lacks ctypes.macholib and has
  # _dbm): seeds 0-2 gave 0.13-0.19 with pyenv's 3.11.7 and 0.11-0.21 with
  # Debian's 3.11. A regression (e.g. a row per sentence) pads far more.
  assert pretraining.padding_fraction(ex) < 0.25


def test_no_word_is_defined_once():
  """The word index of specials and padding is the tokenizers' constant."""
  import os  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  from bert_jax.text import base as text_base  # pylint: disable=g-import-not-at-top
  assert pretraining.NO_WORD is text_base.NO_WORD
  root = os.path.dirname(os.path.dirname(text_base.__file__))
  defined = [os.path.relpath(os.path.join(d, f), root)
             for d, _, files in os.walk(root) for f in files
             if f.endswith('.py') and re.search(
                 r'^NO_WORD\s*=', open(os.path.join(d, f)).read(), re.M)]
  assert defined == [os.path.join('text', 'base.py')]
