"""The jitted step: mesh shape and gradient accumulation never change the math."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import types

import ml_collections
import numpy as np
import pytest

from bert_jax.models import config_for_size
from bert_jax.tasks.pretraining import PretrainingTask
from bert_jax.train import optim, sharding
from bert_jax.train import step as step_lib
from bert_jax.configs import common

VOCAB, L, B = 120, 16, 16


def _task(objective='mlm_nsp', **model):
  mc = config_for_size('tiny', vocab_size=VOCAB, hidden_size=64, num_heads=2,
                       intermediate_size=128, hidden_dropout=0.0,
                       attention_dropout=0.0, **model)
  data = ml_collections.ConfigDict(dict(
      objective=objective, max_seq_length=L, max_predictions_per_seq=4,
      mask_rate=0.15, whole_word_masking=False))
  tok = types.SimpleNamespace(special_ids=(0, 1, 2, 3, 4), mask_id=4,
                              vocab_size=VOCAB)
  return PretrainingTask('pretraining', data, tok, mc)


def _batch(seed=0):
  rng = np.random.RandomState(seed)
  ids = rng.randint(5, VOCAB, size=(B, L)).astype(np.int32)
  ids[:, 0], ids[:, -1] = 2, 3
  mask = np.ones((B, L), np.int32)
  mask[::3, 12:] = 0
  ids[::3, 12:] = 0
  return {'input_ids': ids, 'token_type_ids': np.zeros((B, L), np.int32),
          'attention_mask': mask,
          'word_ids': np.where(mask > 0, np.arange(L)[None], -1).astype(np.int32),
          'nsp_label': rng.randint(0, 2, size=B).astype(np.int32)}


def _run(task, mesh_sizes, steps=2, accum=1, devices=None):
  mesh_cfg = dict(zip(sharding.MESH_AXES, mesh_sizes))
  mesh = sharding.make_mesh(mesh_cfg, devices)
  rules = sharding.DEFAULT_RULES
  optim_cfg = common.optim_group(learning_rate=1e-3, warmup_steps=0)
  tx, schedule = optim.make_optimizer(optim_cfg, 10)
  losses = []
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state, sh = step_lib.init_state(task, tx, mesh, rules, jax.random.key(0))
    train_step, _ = step_lib.jit_steps(task, tx, schedule, mesh, rules, sh, accum)
    for i in range(steps):
      state, m = train_step(state, sharding.shard_batch(_batch(i), mesh),
                            jax.random.key(1))
      losses.append(float(m['loss']))
  return losses, jax.device_get(state.params)


@pytest.fixture(scope='module')
def single_device():
  return _run(_task(), (1, 1, 1), devices=jax.devices()[:1])


@pytest.mark.parametrize('mesh', [(8, 1, 1), (2, 4, 1), (2, 2, 2), (1, 1, 8)])
def test_mesh_shape_never_changes_the_loss(single_device, mesh):
  assert jax.device_count() == 8
  losses, params = _run(_task(), mesh)
  np.testing.assert_allclose(losses, single_device[0], atol=1e-5, rtol=0)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(single_device[1])):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_fsdp_shards_params_and_optimizer_state():
  task = _task()
  mesh = sharding.make_mesh({'data': 2, 'fsdp': 2, 'tensor': 2})
  tx, _ = optim.make_optimizer(common.optim_group(), 10)
  with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    state, _ = step_lib.init_state(task, tx, mesh, sharding.DEFAULT_RULES,
                                   jax.random.key(0))
  wi = state.params['bert']['layer_0']['mlp']['wi']['kernel']
  assert wi.sharding.spec == jax.sharding.PartitionSpec('fsdp', 'tensor')
  mu = state.opt_state[1][0].mu['bert']['layer_0']['mlp']['wi']['kernel']
  assert mu.sharding.spec == wi.sharding.spec


def test_grad_accumulation_equals_one_big_batch(single_device):
  losses, params = _run(_task(), (1, 1, 1), accum=4, devices=jax.devices()[:1])
  np.testing.assert_allclose(losses, single_device[0], atol=1e-5)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(single_device[1])):
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_train_step_compiles_once():
  task = _task(objective='mlm')
  mesh = sharding.make_mesh({'data': -1, 'fsdp': 1, 'tensor': 1})
  tx, schedule = optim.make_optimizer(common.optim_group(), 10)
  with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.DEFAULT_RULES):
    state, sh = step_lib.init_state(task, tx, mesh, sharding.DEFAULT_RULES,
                                    jax.random.key(0))
    train_step, _ = step_lib.jit_steps(task, tx, schedule, mesh,
                                       sharding.DEFAULT_RULES, sh)
    for i in range(3):
      state, _ = train_step(state, sharding.shard_batch(_batch(i), mesh),
                            jax.random.key(1))
  assert train_step._cache_size() == 1


def test_weight_decay_skips_biases_and_norms():
  task = _task()
  params = nn.meta.unbox(task.model.init(jax.random.key(0), task.dummy_batch(1))['params'])
  mask = optim.decay_mask(params)
  assert mask['bert']['layer_0']['mlp']['wi']['kernel']
  assert not mask['bert']['layer_0']['mlp']['wi']['bias']
  assert not mask['bert']['layer_0']['attention_norm']['norm']['scale']
  assert not mask['mlm']['bias']
  assert mask['bert']['embeddings']['word_embeddings']['embedding']


def test_learning_rate_schedule_warmup_and_decay():
  cfg = common.optim_group(learning_rate=1.0, warmup_steps=10)
  sched = optim.learning_rate_schedule(cfg, 110)
  assert float(sched(0)) == 0.0
  assert float(sched(5)) == pytest.approx(0.5)
  assert float(sched(10)) == pytest.approx(1.0)
  assert float(sched(60)) == pytest.approx(0.5)
  assert float(sched(110)) == pytest.approx(0.0)
  with pytest.raises(ValueError, match='optim.name'):
    optim.make_optimizer(common.optim_group(name='sgdx'), 10)
  tx, _ = optim.make_optimizer(common.optim_group(name='lamb'), 10)
  assert tx is not None


def test_mesh_sizes_are_validated():
  with pytest.raises(ValueError, match='does not divide'):
    sharding.mesh_shape({'data': -1, 'fsdp': 3, 'tensor': 1}, 8)
  with pytest.raises(ValueError, match='has 4 devices but 8'):
    sharding.mesh_shape({'data': 2, 'fsdp': 2, 'tensor': 1}, 8)


def test_number_of_steps_is_an_input_of_the_train_step():
  """Runs differing only in train.num_steps share one compiled program (and
  so the persistent compilation cache's entry); the schedule still ends at
  each run's own last step."""
  task = _task(objective='mlm')
  mesh = sharding.make_mesh({'data': -1, 'fsdp': 1, 'tensor': 1})
  cfg = common.optim_group(learning_rate=1.0, warmup_steps=0)
  texts, rates = [], []
  for total in (10, 1000):
    tx, schedule = optim.make_optimizer(cfg, total)
    with jax.set_mesh(mesh), nn.logical_axis_rules(sharding.DEFAULT_RULES):
      state, sh = step_lib.init_state(task, tx, mesh, sharding.DEFAULT_RULES,
                                      jax.random.key(0))
      train_step, _ = step_lib.jit_steps(
          task, tx, schedule, mesh, sharding.DEFAULT_RULES, sh,
          optimizer_for=functools.partial(optim.make_optimizer, cfg),
          total_steps=total)
      batch = sharding.shard_batch(_batch(0), mesh)
      texts.append(train_step.lower(state, batch, jax.random.key(1)).as_text())
      state = state.replace(step=jnp.full_like(state.step, 5))
      _, m = train_step(state, batch, jax.random.key(1))
      rates.append(float(m['learning_rate']))
  assert texts[0] == texts[1]
  assert rates == [pytest.approx(0.5), pytest.approx(0.995)]
