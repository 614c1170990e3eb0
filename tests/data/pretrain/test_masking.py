"""Tests of bert_jax.data.pretrain.masking (on-device dynamic masking)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.data.pretrain import masking

PAD, CLS, SEP, MASK = 0, 2, 3, 4
SPECIALS = (0, 1, 2, 3, 4)
V = 50


def _batch(batch=64, length=32, seed=0):
  """[CLS] tokens [SEP] pad, words of 1-3 tokens, random lengths."""
  rs = np.random.RandomState(seed)
  ids = np.zeros((batch, length), np.int32)
  words = np.full((batch, length), -1, np.int32)
  for row in range(batch):
    n = rs.randint(3, length - 1)  # Real tokens between [CLS] and [SEP].
    ids[row, 0], ids[row, n + 1] = CLS, SEP
    ids[row, 1:n + 1] = rs.randint(5, V, n)
    w, pos = 0, 1
    while pos <= n:
      size = min(rs.randint(1, 4), n + 1 - pos)
      words[row, pos:pos + size] = w
      w, pos = w + 1, pos + size
  return ids, (ids != PAD).astype(np.int32), words


# Jitted, as in the train step; eager dispatch of each op is far slower.
_mask_jit = jax.jit(masking.mask_tokens, static_argnames=(
    'mask_rate', 'max_predictions', 'mask_id', 'vocab_size', 'special_ids',
    'whole_word', 'replace_prob', 'random_prob'))


def _mask(rng, ids, attn, words, **kwargs):
  kwargs = {'mask_id': MASK, 'vocab_size': V, 'special_ids': SPECIALS,
            **kwargs}
  return jax.tree.map(np.asarray, _mask_jit(rng, ids, attn, words, **kwargs))


@pytest.mark.parametrize('whole_word', [False, True])
def test_invariants(whole_word):
  ids, attn, words = _batch()
  out = _mask(jax.random.key(0), ids, attn, words, max_predictions=6,
              whole_word=whole_word)
  pos, labels = out['positions_BP'], out['labels_BP']
  weights = out['weights_BP']
  assert pos.shape == labels.shape == weights.shape == (64, 6)
  assert pos.dtype == labels.dtype == np.int32 and weights.dtype == np.float32
  candidates = (attn == 1) & ~np.isin(ids, SPECIALS)
  for row in range(len(ids)):
    real = weights[row] == 1
    k = int(real.sum())
    assert (real == (np.arange(6) < k)).all()  # Real slots first.
    p = pos[row, real]
    assert (np.diff(p) > 0).all()  # Ascending and distinct.
    assert candidates[row, p].all()  # Never a special token or padding.
    assert (labels[row, real] == ids[row, p]).all()
    assert (pos[row, ~real] == 0).all() and (labels[row, ~real] == 0).all()
    changed = np.flatnonzero(out['masked_ids_BL'][row] != ids[row])
    assert set(changed) <= set(p)
    # As the original: 15% of all real tokens, [CLS] and [SEP] included.
    budget = min(6, max(1, round(attn[row].sum() * 0.15)),
                 candidates[row].sum())
    if whole_word:
      assert 0 <= k <= budget
      # Every token of a chosen word is chosen.
      chosen_words = set(words[row, p])
      assert set(p) == set(np.flatnonzero(np.isin(words[row],
                                                  list(chosen_words))))
    else:
      assert k == budget


def test_whole_words_fill_the_budget_mostly():
  ids, attn, words = _batch(batch=256, length=64)
  out = _mask(jax.random.key(1), ids, attn, words, max_predictions=10,
              whole_word=True)
  budget = np.minimum(10, np.maximum(1, np.round(attn.sum(1) * 0.15)))
  assert out['weights_BP'].sum() > 0.7 * budget.sum()


def test_count_capped_by_max_predictions():
  ids, attn, words = _batch(batch=8, length=64)
  out = _mask(jax.random.key(0), ids, attn, words, mask_rate=0.9,
              max_predictions=5)
  candidates = ((attn == 1) & ~np.isin(ids, SPECIALS)).sum(1)
  assert (candidates > 5).sum() >= 6
  np.testing.assert_array_equal(
      out['weights_BP'].sum(1),
      np.minimum.reduce([np.full(8, 5), np.round(attn.sum(1) * 0.9),
                         candidates]))
  for whole_word in (False, True):
    out = _mask(jax.random.key(0), ids, attn, words, mask_rate=0.9,
                max_predictions=5, whole_word=whole_word)
    assert ((out['masked_ids_BL'] != ids).sum(1) <= 5).all()


def test_80_10_10_and_random_tokens_never_special():
  ids, attn, words = _batch(batch=512, length=64)
  masked, random_, kept, random_ids = 0, 0, 0, []
  for seed in range(4):
    out = _mask(jax.random.key(seed), ids, attn, words, max_predictions=10)
    real = out['weights_BP'] == 1
    rows = np.nonzero(real)[0]
    new = out['masked_ids_BL'][rows, out['positions_BP'][real]]
    old = out['labels_BP'][real]
    masked += (new == MASK).sum()
    kept += (new == old).sum()
    random_ids.append(new[(new != MASK) & (new != old)])
    random_ += len(random_ids[-1])
  total = masked + random_ + kept
  assert total > 9_000
  assert abs(masked / total - 0.8) < 0.02
  # A random draw equal to the original counts as kept: 1/45 of the 10%.
  assert abs(random_ / total - 0.1 * 44 / 45) < 0.015
  assert abs(kept / total - 0.1 * 46 / 45) < 0.015
  random_ids = np.concatenate(random_ids)
  assert not np.isin(random_ids, SPECIALS).any()
  assert random_ids.min() >= 5 and random_ids.max() < V
  assert len(np.unique(random_ids)) == V - len(SPECIALS)


def test_positions_are_uniform_over_candidates():
  ids = np.full((4000, 12), 7, np.int32)
  ids[:, 0], ids[:, 11] = CLS, SEP
  attn = np.ones_like(ids)
  out = _mask(jax.random.key(3), ids, attn, np.zeros_like(ids),
              mask_rate=0.2, max_predictions=4)  # round(10 * 0.2) = 2 a row.
  real = out['weights_BP'] == 1
  assert real.sum() == 8000
  counts = np.bincount(out['positions_BP'][real], minlength=12)
  assert counts[0] == 0 and counts[11] == 0  # Never [CLS] or [SEP].
  assert abs(counts[1:11] / 800 - 1).max() < 0.15  # 8000 over 10 positions.


def test_budget_counts_every_token_as_the_original():
  # create_masked_lm_predictions: round(len(tokens) * 0.15) over all tokens,
  # [CLS] and [SEP] included (which are never candidates themselves).
  def row(n_real, length):
    ids = np.zeros((1, length), np.int32)
    ids[0, 0], ids[0, n_real - 1] = CLS, SEP
    ids[0, 1:n_real - 1] = 7
    return ids, (ids != PAD).astype(np.int32), np.zeros_like(ids)

  # 17 tokens, 15 candidates: round(2.55) = 3, not round(2.25) = 2.
  out = _mask(jax.random.key(0), *row(17, 24), max_predictions=8)
  assert out['weights_BP'].sum() == 3
  # Python's round in double precision: round(190 * 0.15) = round(28.5) = 28
  # (half to even); float32 arithmetic would give 29.
  out = _mask(jax.random.key(0), *row(190, 192), max_predictions=40)
  assert out['weights_BP'].sum() == round(190 * 0.15) == 28
  # Never more predictions than candidates: [CLS] x [SEP] at rate 1.
  out = _mask(jax.random.key(0), *row(3, 4), max_predictions=4, mask_rate=1.0)
  assert out['weights_BP'].sum() == 1


def test_rng_determinism_and_jit():
  ids, attn, words = _batch()
  @jax.jit
  @chex.assert_max_traces(n=1)
  def fn(rng, ids, attn, words):
    return masking.mask_tokens(rng, ids, attn, words, mask_id=MASK,
                               vocab_size=V, special_ids=SPECIALS,
                               whole_word=True)

  a = fn(jax.random.key(0), ids, attn, words)
  b = fn(jax.random.key(0), ids, attn, words)
  c = fn(jax.random.key(1), ids, attn, words)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k])
  assert (np.asarray(a['positions_BP']) != np.asarray(c['positions_BP'])).any()
  # A raw uint32 key works as well as a typed one.
  d = _mask(jax.random.PRNGKey(0), ids, attn, words, whole_word=True)
  assert d['positions_BP'].shape == a['positions_BP'].shape


def test_no_candidates_gives_no_predictions():
  ids = jnp.array([[CLS, SEP, PAD, PAD]], jnp.int32)
  out = _mask(jax.random.key(0), ids, (ids != PAD).astype(jnp.int32),
              -jnp.ones_like(ids), max_predictions=2)
  assert out['weights_BP'].sum() == 0
  np.testing.assert_array_equal(out['masked_ids_BL'], ids)


def test_bad_arguments_fail_loudly():
  ids, attn, words = _batch(batch=2, length=8)
  with pytest.raises(ValueError, match='max_predictions=9'):
    _mask(jax.random.key(0), ids, attn, words, max_predictions=9)
  for kwargs, message in [({'special_ids': (0, 60)}, r'special_ids \[60\]'),
                          ({'mask_rate': 0.0}, 'mask_rate'),
                          ({'replace_prob': 0.95}, 'replace_prob')]:
    with pytest.raises(ValueError, match=message):
      _mask(jax.random.key(0), ids, attn, words, max_predictions=4, **kwargs)
