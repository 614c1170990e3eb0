"""Packing several examples into a row: nothing lost, nothing shared, little
padding; and a packed row scores exactly as its examples do one per row."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bert_jax.data.pretrain import packing
from bert_jax.models import config_for_size
from bert_jax.tasks.pretraining import PretrainingTask

CLS, SEP, PAD = 2, 3, 0


def _examples(lengths, length=32, seed=0):
  rs = np.random.RandomState(seed)
  n = len(lengths)
  ex = {'input_ids': np.full((n, length), PAD, np.int32),
        'token_type_ids': np.zeros((n, length), np.int32),
        'attention_mask': np.zeros((n, length), np.int32),
        'word_ids': np.full((n, length), -1, np.int32),
        'nsp_label': rs.randint(0, 2, n).astype(np.int32)}
  for i, m in enumerate(lengths):
    half = m // 2
    ex['input_ids'][i, :m] = rs.randint(5, 50, m)
    ex['input_ids'][i, [0, half, m - 1]] = CLS, SEP, SEP
    ex['token_type_ids'][i, half + 1:m] = 1
    ex['attention_mask'][i, :m] = 1
    ex['word_ids'][i, 1:m - 1] = np.arange(m - 2)
    ex['word_ids'][i, half] = -1
  return ex


def test_pack_keeps_every_example_whole():
  lengths = np.random.RandomState(1).randint(6, 33, 300)
  ex = _examples(lengths)
  p = packing.pack(ex, max_per_row=8)
  assert p['cls_weight'].sum() == len(lengths)
  assert (p['cls_weight'].sum(1) <= 8).all()
  got = []
  for r in range(len(p['input_ids'])):
    for j in np.flatnonzero(p['cls_weight'][r]):
      span = p['attention_mask'][r] == j + 1
      start = p['cls_positions'][r, j]
      assert np.flatnonzero(span)[0] == start and p['input_ids'][r, start] == CLS
      np.testing.assert_array_equal(p['position_ids'][r, span],
                                    np.arange(span.sum()))
      got.append(tuple(p['input_ids'][r, span]))
  want = [tuple(ex['input_ids'][i, :m]) for i, m in enumerate(lengths)]
  assert sorted(got) == sorted(want)
  # Word ids stay unique within a row (whole-word masking keys on them).
  for r in range(len(p['input_ids'])):
    words = p['word_ids'][r][p['word_ids'][r] >= 0]
    runs = words[np.r_[True, words[1:] != words[:-1]]]
    assert len(runs) == len(set(runs.tolist()))
  # Uniform lengths up to L are a hard case; the corpus's are measured in
  # docs/pretraining.md.
  assert np.mean(p['attention_mask'] == 0) < np.mean(
      ex['attention_mask'] == 0) / 5


def test_pack_rejects_a_bad_row_size():
  with pytest.raises(ValueError, match='max_examples_per_row'):
    packing.pack(_examples([8]), 0)


def _task(packed):
  mc = config_for_size('tiny', vocab_size=64, hidden_size=32, num_heads=2,
                       intermediate_size=64, hidden_dropout=0.0,
                       attention_dropout=0.0)
  data = ml_collections.ConfigDict(dict(
      objective='mlm_nsp', max_seq_length=32, max_predictions_per_seq=4,
      mask_rate=0.15, whole_word_masking=False))
  tok = types.SimpleNamespace(special_ids=(0, 1, 2, 3, 4), mask_id=4,
                              vocab_size=64)
  inputs = types.SimpleNamespace(examples_per_row=4 if packed else 0)
  return PretrainingTask('pretraining', data, tok, mc, inputs)


def test_packed_row_scores_as_its_examples_unpacked():
  lengths = [12, 9, 7]  # One row of 32 holds all three.
  ex = _examples(lengths)
  unpacked, packed = _task(False), _task(True)
  params = unpacked.model.init(jax.random.key(0), unpacked.dummy_batch(1))['params']
  positions = np.array([[1, 2, 4, 5]] * 3, np.int32)  # Fixed 'masked' tokens.
  one = dict(ex, masked_positions=positions,
             masked_labels=np.take_along_axis(ex['input_ids'], positions, 1),
             masked_weights=np.ones((3, 4), np.float32))
  p = packing.pack(ex, max_per_row=4)
  assert len(p['input_ids']) == 1
  row_positions, labels = [], []
  for j in np.flatnonzero(p['cls_weight'][0]):
    start = p['cls_positions'][0, j]
    span = p['input_ids'][0][p['attention_mask'][0] == j + 1]
    i = next(i for i, m in enumerate(lengths)
             if tuple(ex['input_ids'][i, :m]) == tuple(span))
    row_positions += list(positions[i] + start)
    labels += list(ex['input_ids'][i, positions[i]])
  row = dict(p, masked_positions=np.array([row_positions], np.int32),
             masked_labels=np.array([labels], np.int32),
             masked_weights=np.ones((1, 12), np.float32))
  sums = lambda task, b: jax.device_get(task.sums(
      params, {k: jnp.asarray(v) for k, v in b.items()}, None, False))
  norms = lambda task, b: jax.device_get(task.normalizers(
      {k: jnp.asarray(v) for k, v in b.items()}))
  s1, s2 = sums(unpacked, one), sums(packed, row)
  for k in ('mlm_loss', 'mlm_accuracy', 'nsp_loss', 'nsp_accuracy'):
    assert s2[k] == pytest.approx(s1[k], rel=1e-5, abs=1e-5), k
  assert norms(packed, row)['nsp_loss'] == 3.0
  assert set(packed.dummy_batch(2)) == set(row)
