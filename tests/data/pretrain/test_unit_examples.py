"""Tests of bert_jax.data.pretrain.unit_examples (array-built examples)."""

import random

import numpy as np
import pytest

from bert_jax.data.pretrain import examples as examples_lib
from bert_jax.data.pretrain import unit_examples

SPECIALS = {'cls_id': 2, 'sep_id': 3, 'pad_id': 0}


def _docs(n_docs=30, seed=0):
  rng = random.Random(seed)
  words = [f'w{i}x{"y" * (i % 7)}' for i in range(200)]
  return [[' '.join(rng.choice(words) for _ in range(rng.randint(3, 25)))
           for _ in range(rng.randint(1, 12))] for _ in range(n_docs)]


def _build(docs, tok, objective, seed=0, length=64, **kw):
  token_docs = unit_examples.TokenDocs(docs, tok)
  ex = unit_examples.create_examples(
      token_docs, max_seq_length=length, objective=objective,
      short_seq_prob=kw.get('short_seq_prob', 0.1),
      dupe_factor=kw.get('dupe_factor', 1), rng=random.Random(seed),
      **SPECIALS)
  return token_docs, ex


def _find(hay, needle):
  """Start of NEEDLE as a contiguous run in HAY, or -1."""
  if len(needle) == 0:
    return 0
  hits = np.flatnonzero(hay[:len(hay) - len(needle) + 1] == needle[0])
  for h in hits:
    if np.array_equal(hay[h:h + len(needle)], needle):
      return int(h)
  return -1


@pytest.mark.parametrize('objective', ['mlm_nsp', 'mlm_sop'])
def test_pair_rows_are_well_formed_runs_of_the_unit(objective, fake_tokenizer):
  token_docs, ex = _build(_docs(), fake_tokenizer, objective)
  n, length = ex['input_ids'].shape
  assert n > 30 and length == 64
  assert set(np.unique(ex['nsp_label'])) == {0, 1}
  for row in range(n):
    ids, mask = ex['input_ids'][row], ex['attention_mask'][row]
    end = int(mask.sum())
    assert mask[:end].all() and not mask[end:].any()
    assert ids[0] == 2 and ids[end - 1] == 3 and (ids[end:] == 0).all()
    seps = np.flatnonzero(ids[:end] == 3)
    assert len(seps) == 2
    a, b = ids[1:seps[0]], ids[seps[0] + 1:seps[1]]
    assert len(a) and len(b) and len(a) + len(b) <= length - 3
    types = ex['token_type_ids'][row]
    assert (types[:seps[0] + 1] == 0).all() and (types[seps[0] + 1:end] == 1).all()
    # Both segments are contiguous runs of the unit's tokens.
    assert _find(token_docs.ids_T, a) >= 0 and _find(token_docs.ids_T, b) >= 0
    words = ex['word_ids'][row]
    assert words[0] == -1 and words[seps[0]] == -1 and (words[end - 1:] == -1).all()
    real = words[words >= 0]
    assert real[0] == 0 and (np.diff(real) >= 0).all() and (np.diff(real) <= 1).all()


def test_mlm_rows_are_full_single_segments(fake_tokenizer):
  token_docs, ex = _build(_docs(), fake_tokenizer, 'mlm', short_seq_prob=0.0)
  lengths = ex['attention_mask'].sum(1)
  # Cut from one stream: all rows but the last are full.
  assert (np.sort(lengths)[1:] == 64).all()
  assert (ex['token_type_ids'] == 0).all() and (ex['nsp_label'] == 0).all()
  assert (ex['input_ids'][:, 1] != 3).all()  # Never starts at a document [SEP].
  total = int((ex['input_ids'] > 3).sum())
  assert total == len(token_docs.ids_T)  # Every token once (dupe_factor 1).


def test_same_seed_same_examples_other_seed_other(fake_tokenizer):
  docs = _docs()
  _, a = _build(docs, fake_tokenizer, 'mlm_nsp', seed=1)
  _, b = _build(docs, fake_tokenizer, 'mlm_nsp', seed=1)
  _, c = _build(docs, fake_tokenizer, 'mlm_nsp', seed=2)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert not np.array_equal(a['input_ids'], c['input_ids'])


def test_like_the_list_recipe_in_distribution(fake_tokenizer):
  """Same recipe as examples.create_examples: counts and labels agree."""
  docs = _docs(200, seed=3)
  _, new = _build(docs, fake_tokenizer, 'mlm_nsp', length=64, dupe_factor=2)
  old = examples_lib.create_examples(
      examples_lib.documents_to_token_docs(docs, fake_tokenizer),
      max_seq_length=64, objective='mlm_nsp', dupe_factor=2, seed=0,
      **SPECIALS)
  n_new, n_old = len(new['input_ids']), len(old['input_ids'])
  assert abs(n_new - n_old) / n_old < 0.05
  assert abs(new['nsp_label'].mean() - old['nsp_label'].mean()) < 0.05
  pad_new = examples_lib.padding_fraction(new)
  pad_old = examples_lib.padding_fraction(old)
  assert abs(pad_new - pad_old) < 0.03


def _trim_loop(la, lb, max_tokens):
  """BERT's truncate_seq_pair, lengths only."""
  while la + lb > max_tokens:
    if la > lb:
      la -= 1
    else:
      lb -= 1
  return la, lb


def test_closed_form_trim_matches_the_loop():
  rng = random.Random(0)
  for la in range(1, 40):
    for lb in range(1, 40):
      for max_tokens in (5, 17, 30, 61):
        a0, a1, b0, b1 = unit_examples._trim(100, 100 + la, 500, 500 + lb,
                                             max_tokens, rng)
        assert (a1 - a0, b1 - b0) == _trim_loop(la, lb, max_tokens)
        assert 100 <= a0 <= a1 <= 100 + la and 500 <= b0 <= b1 <= 500 + lb


def test_encode_flat_word_starts_match_encode_words(real_vocab_path):
  from bert_jax.text import load_tokenizer  # pylint: disable=g-import-not-at-top
  tok = load_tokenizer(real_vocab_path)
  texts = ['Unaffable élan, naïve café!', "don't stop-believing #hashtag ##x",
           '中文字符 and [MASK] tokens [SEP] mid', '', '   ',
           'a' * 250 + ' supercalifragilisticexpialidocious',
           'tab\tsep\u00a0nbsp\u200bzero-width', 'Ünïcödé ΑΒΓ ﬁ ligature 🙂']
  ids, lengths, new_word = tok.encode_flat(texts)
  start = 0
  for text, n in zip(texts, lengths):
    want_ids, want_words = tok.encode_words(text)
    assert list(ids[start:start + n]) == list(want_ids)
    got = np.cumsum(new_word[start:start + n]) - 1
    assert list(got) == list(want_words), text
    start += n
  assert start == len(ids)
  # The generic path (any Tokenizer) agrees with the WordPiece fast path.
  from bert_jax.text import base  # pylint: disable=g-import-not-at-top
  slow = base.Tokenizer.encode_flat(tok, texts)
  for x, y in zip(slow, (ids, lengths, new_word)):
    np.testing.assert_array_equal(x, y)
