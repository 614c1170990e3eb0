"""pretrained.load_params on a workdir reads the newest complete step."""

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax import pretrained
from bert_jax.errors import UserInputError
from bert_jax.train import checkpoint as ckpt_lib
from bert_jax.train import step as step_lib


def _state(value):
  params = {'bert': {'w': jnp.full((3,), value, jnp.float32)}}
  return step_lib.TrainState(step=jnp.asarray(int(value), jnp.int32),
                             params=params, opt_state=())


def test_load_params_skips_a_half_written_newest_step(tmp_path):
  ckpt = ckpt_lib.Checkpointer(str(tmp_path), every_steps=1, keep=5,
                               async_save=False)
  for step in (1, 2, 3):
    ckpt.save(step, _state(step), {'step': step}, None)
  ckpt.close()
  root = tmp_path / 'checkpoints'
  np.testing.assert_array_equal(
      pretrained.load_params(str(tmp_path))['bert']['w'], [3, 3, 3])
  # Step 3 as a kill mid-save leaves it: its arrays there, no commit marker.
  os.remove(root / '3' / 'state' / ckpt_lib.COMMIT_MARKER)
  np.testing.assert_array_equal(
      pretrained.load_params(str(tmp_path))['bert']['w'], [2, 2, 2])
  # A step whose arrays pass the cheap checks but do not read: the next one.
  shutil.copytree(root / '2', root / '4')
  for name in os.listdir(root / '4' / 'state'):
    if name not in (ckpt_lib.COMMIT_MARKER, '_METADATA', '_CHECKPOINT_METADATA'):
      path = root / '4' / 'state' / name
      shutil.rmtree(path) if path.is_dir() else os.remove(path)
  np.testing.assert_array_equal(
      pretrained.load_params(str(tmp_path))['bert']['w'], [2, 2, 2])
  # None complete: an error naming every step and why.
  for step in ('1', '2'):
    os.remove(root / step / ckpt_lib.COMMIT_MARKER)
  with pytest.raises(UserInputError, match=r'No complete checkpoint in .*'
                     r'4 \(.*could not be read.*; 3 \(state/commit_success'
                     r'\.txt .*; 2 \(commit_success\.txt .*; 1 \('):
    pretrained.load_params(str(tmp_path))
