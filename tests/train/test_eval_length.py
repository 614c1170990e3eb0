"""Evaluating a pretrained checkpoint at another length than it was trained
at (issue 24, finding 2: train short, test long): eval_only on a pretraining
config with init_from runs the held-out documents at data.max_seq_length, and
a learned position table refuses a length past its rows instead of reading
untrained ones."""

import json
import os

import pytest

from bert_jax.train import trainer
from tests.train import helpers


@pytest.fixture(scope='module')
def alibi_ckpt(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('alibi'))
  config = helpers.tiny_config(num_steps=2, eval_every_steps=2)
  config.model.position_embedding = 'alibi'
  config.ckpt.every_steps = 2
  trainer.run(config, workdir)
  return workdir


def _eval(ckpt, workdir, length, **model):
  config = helpers.tiny_config()
  config.init_from = ckpt
  config.eval_only = True
  config.data.max_seq_length = length
  config.data.max_predictions_per_seq = max(5, length * 15 // 100)
  config.train.eval_batches = 0
  for k, v in model.items():
    config.model[k] = v
  return trainer.run(config, str(workdir))


def test_a_checkpoint_is_evaluated_at_twice_its_training_length(alibi_ckpt, tmp_path):
  trained = json.load(open(os.path.join(alibi_ckpt, 'eval_results.json')))
  out = _eval(alibi_ckpt, tmp_path / 'l64', 64)
  saved = json.load(open(tmp_path / 'l64' / 'eval_results.json'))
  assert saved['eval_shapes']['eval'][1] == 64 and out['step'] == 0
  assert set(saved['eval']) >= {'mlm_loss', 'mlm_accuracy'}
  long = _eval(alibi_ckpt, tmp_path / 'l128', 128)
  n64, l64 = saved['eval_shapes']['eval']
  n128, l128 = long['eval_shapes']['eval']
  # The length is honoured: rows twice as long, and about half as many of them.
  assert (l64, l128) == (64, 128) and n128 < n64
  # The architecture is the checkpoint's, not the config's.
  cfg = json.load(open(tmp_path / 'l128' / 'model_config.json'))
  assert cfg['position_embedding'] == 'alibi'
  assert trained['eval']['mlm_loss'] > 0


def test_learned_positions_refuse_a_length_past_their_table(tmp_path):
  workdir = str(tmp_path / 'learned')
  config = helpers.tiny_config(num_steps=1, eval_every_steps=1)
  config.model.max_position_embeddings = 32   # The table ends at the training length.
  config.ckpt.every_steps = 1
  trainer.run(config, workdir)
  with pytest.raises(ValueError, match='exceeds model.max_position_embeddings=32'):
    _eval(workdir, tmp_path / 'l64', 64)
