"""Length buckets and length-grouped batches: shapes bounded, rows intact,
every row once per epoch, resume exact, the same shapes on every process."""

import numpy as np
import pytest

from bert_jax.data import length_buckets as lb
from bert_jax.data import loader

L = 64


def _features(n=203, seed=0):
  lengths = np.random.default_rng(seed).integers(3, L + 1, n)
  mask = (np.arange(L)[None] < lengths[:, None]).astype(np.int32)
  ids = np.where(mask > 0, np.arange(n)[:, None] + 1000, 0).astype(np.int32)
  return {'input_ids': ids, 'attention_mask': mask,
          'label': np.arange(n, dtype=np.int32)}, lengths


AXES = {'input_ids': 0, 'attention_mask': 0}


def test_parse_and_lengths():
  assert lb.parse('', 64) == (16, 32, 48, 64)
  assert lb.parse('', 128) == tuple(range(16, 129, 16))
  assert lb.parse('', 384) == tuple(range(48, 385, 48))
  assert lb.parse('32, 8', 64) == (8, 32, 64)
  assert lb.parse('off', 64) is None
  with pytest.raises(ValueError, match=r'length_buckets.*\'100\''):
    lb.parse('32,100', 64)
  mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
  assert lb.row_lengths(mask).tolist() == [2, 4, 0]
  assert [lb.bucket_of(n, (16, 32)) for n in (0, 16, 17, 40)] == [16, 16, 32, 32]


def _loader(feats, lengths, **kw):
  trimmer = lb.Trimmer(lb.auto_buckets(L), lengths, AXES)
  order = lb.LengthGroupedBatches(lengths, 16, 0, group_batches=4)
  return loader.make_loader(feats, global_batch_size=16, seed=0,
                            trimmer=trimmer, batch_order=order, **kw)


def test_grouped_batches_cover_each_epoch_and_keep_rows():
  feats, lengths = _features()
  it = _loader(feats, lengths)
  per_epoch = len(lengths) // 16
  rows, widths, waste_grouped = [], set(), 0
  for _ in range(per_epoch):
    b = next(it)
    idx = b['label']
    widths.add(b['input_ids'].shape[1])
    assert b['input_ids'].shape[1] == lb.bucket_of(lengths[idx].max(), lb.auto_buckets(L))
    # Cutting drops padding only: each row is its full row's first columns.
    np.testing.assert_array_equal(b['input_ids'], feats['input_ids'][idx, :b['input_ids'].shape[1]])
    waste_grouped += b['input_ids'].size - lengths[idx].sum()
    rows.extend(idx.tolist())
  it.close()
  assert len(set(rows)) == len(rows) == per_epoch * 16
  assert widths <= set(lb.auto_buckets(L))
  # Grouping by length pads far less than random batches cut to their bucket.
  rng = np.random.default_rng(0)
  waste_random = sum(lb.bucket_of(lengths[r].max(), lb.auto_buckets(L)) * 16
                     - lengths[r].sum() for r in
                     rng.permutation(len(lengths))[:per_epoch * 16].reshape(-1, 16))
  assert waste_grouped < 0.6 * waste_random


def test_resume_is_exact_across_an_epoch_end():
  feats, lengths = _features()
  it = _loader(feats, lengths)
  for _ in range(10):  # 12 batches per epoch: the next ones cross into epoch 2.
    next(it)
  state = it.get_state()
  want = [next(it)['label'] for _ in range(5)]
  it.close()
  again = _loader(feats, lengths)
  again.set_state(state)
  got = [next(again)['label'] for _ in range(5)]
  again.close()
  for a, b in zip(want, got):
    np.testing.assert_array_equal(a, b)
  # Another grouping is another pipeline: its state is refused.
  other = loader.make_loader(feats, global_batch_size=16, seed=0,
                             trimmer=lb.Trimmer((32, 64), lengths, AXES))
  with pytest.raises(ValueError, match='different pipeline'):
    other.set_state(state)
  other.close()


def test_processes_agree_on_shapes():
  feats, lengths = _features()
  whole = _loader(feats, lengths)
  parts = [_loader(feats, lengths, process_index=p, process_count=2)
           for p in range(2)]
  for _ in range(6):
    w, a, b = next(whole), next(parts[0]), next(parts[1])
    assert a['input_ids'].shape == b['input_ids'].shape == (8, w['input_ids'].shape[1])
    np.testing.assert_array_equal(np.concatenate([a['label'], b['label']]), w['label'])
  for it in (whole, *parts):
    it.close()


def test_every_row_once_per_epoch_with_a_remainder():
  # 203 rows, batches of 16: 11 rows left over by each epoch's permutation.
  _, lengths = _features()
  N, G, E = len(lengths), 16, 16  # 16 epochs: 203 * 16 rows fill 203 batches.
  order = lb.LengthGroupedBatches(lengths, G, 0, group_batches=4, num_epochs=E)
  assert len(order) == N * E // G == 203
  batches = [order[t] for t in range(len(order))]
  assert {b.shape for b in batches} == {(G,)}  # Every batch full: no new shapes.
  counts = np.bincount(np.concatenate(batches), minlength=N)
  assert (counts == E).all()  # Nothing dropped: each row once per epoch.
  for e in range(E):  # N // G or one more batches an epoch.
    assert order.first_batch(e + 1) - order.first_batch(e) in (N // G, N // G + 1)
  # A leftover row of epoch 0 is trained on at the start of epoch 1.
  first = set(np.concatenate(batches[:order.first_batch(1)]).tolist())
  left = set(range(N)) - first
  assert len(left) == N % G
  assert left <= set(np.concatenate(batches[order.first_batch(1):
                                            order.first_batch(2)]).tolist())
