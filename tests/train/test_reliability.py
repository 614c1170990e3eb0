"""Reliability (docs/reliability.md): broken checkpoints, one run per workdir,
a full disk while saving, and train.nan_policy. No test builds a model: the
checkpoints hold a small TrainState and the step trains a linear task, so the
file runs in seconds."""

import errno
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from bert_jax.data import loader as loader_lib
from bert_jax.train import checkpoint as ckpt_lib
from bert_jax.train import metrics_writer
from bert_jax.train import nan_guard
from bert_jax.train import optim
from bert_jax.train import sharding
from bert_jax.train import step as step_lib
from bert_jax.train import trainer
from bert_jax.train import workdir_lock
from bert_jax.configs import common
from tests.train import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TX = optax.adamw(1e-3)


def _state(step, n=64):
  # Random weights: tensorstore compresses, and the disk-full test needs a
  # file larger than its limit.
  w = np.random.RandomState(step).rand(n, n).astype(np.float32)
  params = {'w': jnp.asarray(w), 'b': jnp.zeros((n,))}
  return step_lib.TrainState(step=jnp.asarray(step, jnp.int32), params=params,
                             opt_state=TX.init(params))


def _restore_args(n=64):
  abstract = jax.eval_shape(lambda: _state(0, n))
  dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return abstract, jax.tree.map(lambda _: dev, abstract)


def _saved(tmp_path, steps, keep=10, async_save=False, n=64):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), every_steps=1, keep=keep,
                               async_save=async_save)
  for s in steps:
    ckpt.save(s, _state(s, n), {'step': s}, None)
  ckpt.wait()
  return ckpt


def _files(directory):
  return [os.path.join(r, f) for r, _, fs in os.walk(directory) for f in fs]


# Broken checkpoints.


def test_broken_latest_checkpoints_are_moved_aside_and_the_good_one_restored(
    tmp_path, caplog):
  ckpt = _saved(tmp_path, [1, 2, 3, 4])
  os.remove(os.path.join(ckpt.step_dir(4), 'commit_success.txt'))  # Uncommitted.
  with open(os.path.join(ckpt.step_dir(3), 'metadata', 'metadata'), 'wb') as f:
    f.write(os.urandom(64))                                         # Garbage.
  for path in _files(os.path.join(ckpt.step_dir(2), 'state')):      # Truncated.
    if os.sep + 'd' + os.sep in path:
      with open(path, 'r+b') as f:
        f.truncate(7)
  with caplog.at_level(logging.WARNING):
    step, state, metadata = ckpt.restore_latest(*_restore_args(), None)
  assert step == 1 and metadata == {'step': 1}
  np.testing.assert_array_equal(state.params['w'], _state(1).params['w'])
  log = caplog.text
  assert f'broken checkpoint {ckpt.step_dir(4)}: commit_success.txt' in log
  assert f'broken checkpoint {ckpt.step_dir(3)}: metadata/metadata is unreadable' in log
  assert f'broken checkpoint {ckpt.step_dir(2)}:' in log
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['1']
  assert sorted(os.listdir(tmp_path / 'checkpoints.broken')) == ['2', '3', '4']
  # The resumed run saves those steps again without colliding.
  ckpt.save(2, _state(2), {'step': 2}, None)
  assert ckpt.latest_step() == 2
  ckpt.close()


def test_a_checkpoint_of_another_config_fails_loudly_and_is_kept(tmp_path):
  ckpt = _saved(tmp_path, [1])
  with pytest.raises(ckpt_lib.CheckpointMismatchError,
                     match=r'checkpoints/1 does not fit this run'):
    ckpt.restore_latest(*_restore_args(n=32), None)
  assert os.listdir(tmp_path / 'checkpoints') == ['1']
  ckpt.close()


def test_retention_counts_only_good_checkpoints(tmp_path):
  ckpt = _saved(tmp_path, [1], keep=1)
  # A broken newer step (orbax's own max_to_keep=1 would keep it and delete
  # every good one).
  os.makedirs(tmp_path / 'checkpoints' / '9')
  ckpt.save(2, _state(2), {'step': 2}, None)
  ckpt.wait()
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '9']
  assert ckpt.latest_step() == 2
  ckpt.close()
  # A save killed midway leaves a tmp folder: the next run removes it.
  os.makedirs(tmp_path / 'checkpoints' / '3.orbax-checkpoint-tmp' / 'state')
  ckpt = _saved(tmp_path, [3], keep=1)
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['3', '9']
  ckpt.close()


# A full disk while saving.


# A failed background write leaves a tensorstore callback aimed at orbax's
# closed event loop: noise from orbax, not a failure.
@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
@pytest.mark.parametrize('async_save', [False, True])
def test_a_failed_write_is_a_clear_error_and_keeps_earlier_checkpoints(
    tmp_path, async_save):
  """RLIMIT_FSIZE makes the kernel refuse the write, as a full disk would; it
  binds root too (chmod does not)."""
  n = 256  # A 256 KB weight, over the limit below.
  ckpt = _saved(tmp_path, [1], keep=1, async_save=async_save, n=n)
  limits = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not death.
  resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, limits[1]))
  try:
    with pytest.raises(ckpt_lib.CheckpointWriteError) as info:
      ckpt.save(2, _state(2, n), {'step': 2}, None)
      ckpt.wait()
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, limits)
    signal.signal(signal.SIGXFSZ, previous)
  message = str(info.value)
  assert f'Could not write checkpoint step 2 to {ckpt.step_dir(2)}' in message
  assert 'a file size limit was hit' in message
  assert 'intact (steps [1])' in message
  assert os.listdir(tmp_path / 'checkpoints') == ['1']  # No partial leftovers.
  step, state, _ = ckpt.restore_latest(*_restore_args(n), None)
  assert step == 1
  np.testing.assert_array_equal(state.params['w'], _state(1, n).params['w'])
  ckpt.close()


def test_write_errors_are_named():
  full = ValueError('Failed writing "x": No space left [os_error_code=\'28\']')
  assert ckpt_lib._why(full).startswith('the disk is full')
  try:
    try:
      raise OSError(errno.EROFS, 'Read-only file system')
    except OSError as e:
      raise RuntimeError('save failed') from e
  except RuntimeError as e:
    assert ckpt_lib._why(e).startswith('the file system is read-only')


# One run per workdir.


def _holder(workdir):
  """A process holding WORKDIR's lock until killed."""
  code = ('import sys, time\n'
          'from bert_jax.train import workdir_lock\n'
          'workdir_lock.acquire(sys.argv[1])\n'
          'print("held", flush=True)\n'
          'time.sleep(600)\n')
  proc = subprocess.Popen([sys.executable, '-c', code, str(workdir)], cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_a_live_run_holds_the_workdir_and_a_killed_one_does_not(tmp_path):
  proc = _holder(tmp_path)
  try:
    with pytest.raises(workdir_lock.WorkdirLocked) as info:
      trainer.run(helpers.tiny_config(), str(tmp_path))  # Before any setup.
    assert f'PID {proc.pid} on host {socket.gethostname()!r}' in str(info.value)
  finally:
    proc.kill()  # SIGKILL: the lock stays behind.
    proc.wait()
  assert workdir_lock.read(str(tmp_path)).pid == proc.pid
  with workdir_lock.hold(str(tmp_path)):  # Stale: taken over.
    assert workdir_lock.read(str(tmp_path)).pid == os.getpid()
  assert not os.path.exists(tmp_path / workdir_lock.LOCK_NAME)  # Released.


def test_a_lock_from_another_host_needs_force(tmp_path):
  other = workdir_lock.Holder('gpu-node-7', 4242, '2024-05-01T10:00:00+00:00')
  with open(tmp_path / workdir_lock.LOCK_NAME, 'w') as f:
    json.dump(vars(other), f)
  with pytest.raises(workdir_lock.WorkdirLocked,
                     match=r"PID 4242 on host 'gpu-node-7'.*another host.*"
                           r'--config.train.force_lock=True'):
    workdir_lock.acquire(str(tmp_path))
  me = workdir_lock.acquire(str(tmp_path), force=True)
  assert workdir_lock.read(str(tmp_path)) == me
  workdir_lock.release(str(tmp_path), me)


# train.nan_policy.


class _FakeCkpt:
  directory = '/w/checkpoints'

  def wait(self):
    pass

  def latest_step(self):
    return 2


def test_nan_guard_counts_skips_and_stops_after_k_in_a_row():
  train = ml_collections.ConfigDict(common.failure_fields())
  train.nan_policy, train.nan_max_skips = 'skip', 2
  guard = nan_guard.NanGuard(train, _FakeCkpt())
  ok = {'loss': 1.0, 'grad_norm': 1.0, 'skipped': 0.0}
  bad = {'loss': np.nan, 'grad_norm': np.nan, 'skipped': 1.0}
  assert guard.check(1, ok) == {'loss': 1.0, 'grad_norm': 1.0}
  assert guard.check(2, bad) is None
  assert guard.check(3, ok) is not None  # Resets the run of skips.
  assert guard.counts() == {'skipped_steps': 1.0, 'skipped_total': 1.0}
  assert guard.check(4, bad) is None
  with pytest.raises(FloatingPointError,
                     match=r'2 updates in a row were skipped .*steps 4 to 5\).*'
                           r'last good checkpoint is step 2 in /w/checkpoints'):
    guard.check(5, bad)
  train.nan_policy = 'stop'
  with pytest.raises(FloatingPointError, match=r'Loss is nan at step 7; stopping'):
    nan_guard.NanGuard(train, _FakeCkpt()).check(7, {'loss': np.nan})
  train.nan_policy = 'ignore'
  with pytest.raises(ValueError, match=r"train.nan_policy='ignore' is not valid"):
    nan_guard.check_config(train)


class _LinearTask:
  """Least squares: the step's contract (prepare, normalizers, sums) without
  a model to compile."""
  loss_keys = ('mse',)

  def prepare(self, batch, rng, train):
    return batch

  def normalizers(self, batch):
    return {'mse': jnp.asarray(batch['x'].shape[0], jnp.float32)}

  def sums(self, params, batch, rng, train):
    return {'mse': jnp.sum((batch['x'] @ params['w'] - batch['y']) ** 2)}


def test_skip_step_drops_a_non_finite_update_with_grad_accumulation():
  rng = np.random.RandomState(0)
  good = {'x': rng.randn(8, 4).astype(np.float32),
          'y': rng.randn(8).astype(np.float32)}
  bad = dict(good, x=np.where(np.arange(8)[:, None] == 5, np.nan, good['x']))
  tx, schedule = optim.make_optimizer(common.optim_group(warmup_steps=0), 10)
  params = {'w': jnp.ones((4,))}
  state = step_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                              opt_state=tx.init(params))
  train_step = jax.jit(step_lib.make_train_step(
      _LinearTask(), tx, schedule, grad_accum_steps=2, skip_nonfinite=True))
  state, m = train_step(state, good, jax.random.key(1))
  assert float(m['skipped']) == 0.0 and int(state.step) == 1
  assert not np.array_equal(state.params['w'], params['w'])
  before = jax.device_get(state)
  state, m = train_step(state, bad, jax.random.key(1))
  assert float(m['skipped']) == 1.0 and np.isnan(float(m['loss']))
  after = jax.device_get(state)
  assert int(after.step) == 2  # The batch counts as consumed.
  for a, b in zip(jax.tree.leaves((before.params, before.opt_state)),
                  jax.tree.leaves((after.params, after.opt_state))):
    np.testing.assert_array_equal(a, b)


def test_the_loop_skips_a_bad_batch_counts_it_and_goes_on(tmp_path):
  """train_loop with nan_policy=skip, on the linear task (nothing to compile
  but the step): step 2's batch has a NaN row."""
  rng = np.random.RandomState(0)
  n = 32
  x = rng.randn(n, 4).astype(np.float32)
  x[12] = np.nan  # Rows 8-15 make step 2 (no shuffle).
  features = {'x': x, 'y': rng.randn(n).astype(np.float32),
              'attention_mask': np.ones((n, 2), np.int32)}
  config = helpers.tiny_config(num_steps=4, log_every_steps=2,
                               nan_policy='skip', global_batch_size=8)
  tx, schedule = optim.make_optimizer(common.optim_group(warmup_steps=0), 4)
  params = {'w': jnp.ones((4,))}
  workdir = str(tmp_path)
  r = trainer.Run(
      config=config, workdir=workdir, task=_LinearTask(), model_config=None,
      tokenizer=None, mesh=sharding.make_mesh(config.mesh),
      state=step_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                opt_state=tx.init(params)),
      train_step=jax.jit(step_lib.make_train_step(
          _LinearTask(), tx, schedule, 1, skip_nonfinite=True)),
      eval_step=None, predict=None, train_rng=jax.random.key(0),
      eval_rng=jax.random.key(1), writer=metrics_writer.MetricsWriter(workdir),
      num_steps=4, eval_every=0, stats={},
      evaluator=types.SimpleNamespace(enabled=False, metadata=dict,
                                    wait=lambda: None, close=lambda: None),
      ckpt=ckpt_lib.Checkpointer(workdir, every_steps=0, keep=1,
                                 async_save=False),
      loader=loader_lib.make_loader(features, global_batch_size=8, seed=0,
                                    shuffle=False))
  result = trainer.train_loop(r)
  assert result['step'] == 4 and int(result['state'].step) == 4
  assert np.all(np.isfinite(np.asarray(result['state'].params['w'])))
  with open(tmp_path / 'metrics.jsonl') as f:
    records = [json.loads(line) for line in f]
  assert [(x['step'], x['skipped_steps'], x['skipped_total']) for x in records
          ] == [(2, 1.0, 1.0), (4, 0.0, 1.0)]
  assert all(np.isfinite(x['loss']) for x in records)  # Step 2 left out.
  assert os.listdir(tmp_path / 'checkpoints') == ['4']
