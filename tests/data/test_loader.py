"""Tests of bert_jax.data.loader (grain)."""

import json

import numpy as np
import pytest

from bert_jax.data import loader

N = 100


def _features():
  return {'input_ids': np.arange(N * 4, dtype=np.int32).reshape(N, 4),
          'nsp_label': np.arange(N, dtype=np.int32)}


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_batches_shapes_and_one_epoch_covers_everything():
  it = loader.make_loader(_features(), global_batch_size=8, seed=0,
                          num_epochs=1)
  batches = list(it)
  assert len(batches) == N // 8  # drop_remainder
  for b in batches:
    assert b['input_ids'].shape == (8, 4) and b['nsp_label'].shape == (8,)
    np.testing.assert_array_equal(b['input_ids'][:, 0], b['nsp_label'] * 4)
  seen = np.concatenate([b['nsp_label'] for b in batches])
  assert len(set(seen)) == len(seen) == 96
  assert (seen != np.sort(seen)).any()  # Shuffled.
  kept = loader.make_loader(_features(), global_batch_size=8, seed=0,
                            num_epochs=1, drop_remainder=False, shuffle=False)
  seen = np.concatenate([b['nsp_label'] for b in kept])
  np.testing.assert_array_equal(seen, np.arange(N))


def test_epochs_reshuffle_and_seeds_differ():
  it = loader.make_loader(_features(), global_batch_size=10, seed=0)
  first, second = (np.concatenate([b['nsp_label'] for b in _take(it, 10)])
                   for _ in range(2))
  assert sorted(first) == sorted(second) == list(range(N))
  assert (first != second).any()
  again = loader.make_loader(_features(), global_batch_size=10, seed=0)
  np.testing.assert_array_equal(next(again)['nsp_label'], first[:10])
  other = loader.make_loader(_features(), global_batch_size=10, seed=1)
  assert (next(other)['nsp_label'] != first[:10]).any()


def test_processes_split_each_global_batch():
  one = loader.make_loader(_features(), global_batch_size=8, seed=3)
  parts = [loader.make_loader(_features(), global_batch_size=8, seed=3,
                              process_index=p, process_count=4)
           for p in range(4)]
  for _ in range(30):  # Past an epoch end.
    whole = next(one)['nsp_label']
    local = [next(p)['nsp_label'] for p in parts]
    assert all(x.shape == (2,) for x in local)
    np.testing.assert_array_equal(np.concatenate(local), whole)


def test_restored_iterator_continues_exactly():
  it = loader.make_loader(_features(), global_batch_size=6, seed=5,
                          process_index=1, process_count=2)
  _take(it, 7)
  state = it.get_state()
  assert isinstance(state, bytes)
  json.loads(state)  # Plain JSON.
  expected = _take(it, 25)
  for saved in (state, state.decode()):
    restored = loader.make_loader(_features(), global_batch_size=6, seed=5,
                                  process_index=1, process_count=2)
    next(restored)  # Its own position is overwritten by the state.
    restored.set_state(saved)
    for want, got in zip(expected, _take(restored, 25)):
      for k in want:
        np.testing.assert_array_equal(want[k], got[k])
    restored.close()
  it.close()


def test_state_from_another_pipeline_is_refused():
  it = loader.make_loader(_features(), global_batch_size=4, seed=0)
  next(it)
  state = it.get_state()
  other = loader.make_loader(_features(), global_batch_size=8, seed=0)
  with pytest.raises(ValueError, match='different pipeline'):
    other.set_state(state)
  changed = _features()
  changed['nsp_label'] = changed['nsp_label'][::-1].copy()
  other = loader.make_loader(changed, global_batch_size=4, seed=0)
  with pytest.raises(ValueError, match='different pipeline'):
    other.set_state(state)


def test_bad_sizes_fail_loudly():
  with pytest.raises(ValueError,
                     match='global_batch_size=10 .*process_count=4'):
    loader.make_loader(_features(), global_batch_size=10, seed=0,
                       process_count=4)
  with pytest.raises(ValueError, match='process_index=2'):
    loader.make_loader(_features(), global_batch_size=8, seed=0,
                       process_index=2, process_count=2)
  with pytest.raises(ValueError, match='differ in length'):
    loader.make_loader({'a': np.zeros(3), 'b': np.zeros(4)},
                       global_batch_size=1, seed=0)
  with pytest.raises(ValueError, match='no full batch'):
    loader.make_loader(_features(), global_batch_size=200, seed=0,
                       num_epochs=1)


def test_orbax_checkpoint_round_trip(tmp_path):
  ocp = pytest.importorskip('orbax.checkpoint')
  it = loader.make_loader(_features(), global_batch_size=4, seed=2)
  _take(it, 3)
  with ocp.CheckpointManager(tmp_path) as manager:
    manager.save(3, args=ocp.args.Composite(data=loader.checkpoint_args(it)))
    manager.wait_until_finished()
  expected = _take(it, 5)
  fresh = loader.make_loader(_features(), global_batch_size=4, seed=2)
  with ocp.CheckpointManager(tmp_path) as manager:
    manager.restore(3, args=ocp.args.Composite(
        data=loader.checkpoint_args(fresh, restore=True)))
  for want, got in zip(expected, _take(fresh, 5)):
    np.testing.assert_array_equal(want['nsp_label'], got['nsp_label'])
