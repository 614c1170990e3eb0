"""One setup path: model config resolution, the params matcher, loaded params
as jit arguments, evaluation over every example, the evaluator's choices."""

import logging
import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bert_jax.models import config_for_size
from bert_jax.models.config import ModelConfig
from bert_jax.tasks.pretraining import PretrainingTask
from bert_jax.train import evaluation, evaluators, optim, sharding
from bert_jax.train import setup as setup_lib
from bert_jax.train import step as step_lib
from bert_jax.configs import finetune, pretrain

VOCAB, L = 100, 16


def _task(objective='mlm_nsp'):
  mc = config_for_size('tiny', vocab_size=VOCAB, hidden_size=32, num_heads=2,
                       intermediate_size=64)
  data = ml_collections.ConfigDict(dict(
      objective=objective, max_seq_length=L, max_predictions_per_seq=4,
      mask_rate=0.15, whole_word_masking=False))
  tok = types.SimpleNamespace(special_ids=(0, 1, 2, 3, 4), mask_id=4,
                              vocab_size=VOCAB)
  return PretrainingTask('pretraining', data, tok, mc)


def _fresh(task):
  return nn.meta.unbox(jax.eval_shape(
      task.model.init, jax.random.key(0), task.dummy_batch(1))['params'])


def _params(task, seed):
  return jax.tree.map(np.asarray, nn.meta.unbox(
      task.model.init(jax.random.key(seed), task.dummy_batch(1))['params']))


# --- Model config: one place, one position rule. -------------------------


@pytest.mark.parametrize('position,limited', [
    ('learned', True), ('sinusoidal', True), ('rope', False), ('alibi', False)])
def test_position_limit_is_checked_for_every_table_scheme(position, limited):
  config = pretrain.get_config('size=tiny,runlocal')
  config.model.position_embedding = position
  config.model.max_position_embeddings = 64
  config.data.max_seq_length = 128
  if limited:
    with pytest.raises(ValueError, match='data.max_seq_length=128 exceeds '
                       'model.max_position_embeddings=64'):
      setup_lib.resolve_model_config(config, VOCAB)
  else:
    mc = setup_lib.resolve_model_config(config, VOCAB)
    assert mc.position_limit is None


def test_model_config_resolves_auto_dtype_and_vocab():
  config = pretrain.get_config('size=tiny,runlocal')
  mc = setup_lib.resolve_model_config(config, VOCAB)
  assert mc.dtype == 'float32' and mc.vocab_size == VOCAB  # CPU
  config.model.vocab_size = VOCAB - 1
  with pytest.raises(ValueError, match='smaller than the tokenizer'):
    setup_lib.resolve_model_config(config, VOCAB)


def test_old_remat_policy_name_still_loads():
  mc = config_for_size('tiny').to_dict()
  mc['remat_policy'] = 'save_nothing'
  assert ModelConfig.from_dict(mc).remat_policy == 'full'


# --- The params matcher. -------------------------------------------------


def test_matcher_takes_fitting_leaves_and_keeps_missing_heads_fresh(caplog):
  task = _task('mlm_nsp')
  loaded = _params(_task('mlm'), seed=1)  # No NSP head in the checkpoint.
  with caplog.at_level(logging.WARNING):
    got = setup_lib.match_params(_fresh(task), loaded, 'ckpt')
  assert got and all(not k.startswith('nsp') for k in got)
  assert "'nsp_head'" in caplog.text or 'nsp' in caplog.text
  np.testing.assert_array_equal(
      got['bert/embeddings/word_embeddings/embedding'],
      loaded['bert']['embeddings']['word_embeddings']['embedding'])


def test_matcher_lists_every_encoder_mismatch_in_one_error():
  task = _task()
  loaded = _params(task, seed=1)
  emb = loaded['bert']['embeddings']
  emb['word_embeddings']['embedding'] = np.zeros((VOCAB + 5, 32), np.float32)
  emb['position_embeddings']['embedding'] = np.zeros((7, 32), np.float32)
  with pytest.raises(ValueError) as e:
    setup_lib.match_params(_fresh(task), loaded, 'ckpt')
  msg = str(e.value)
  assert '2 encoder params do not fit' in msg
  assert 'word_embeddings' in msg and 'position_embeddings' in msg


def test_matcher_require_all_names_what_is_missing():
  task = _task('mlm_nsp')
  with pytest.raises(ValueError, match='eval_only needs a fine-tuned'):
    setup_lib.match_params(_fresh(task), _params(_task('mlm'), 1), 'ckpt',
                           require_all=True)


def test_loaded_params_enter_init_as_sharded_arguments():
  task = _task()
  tx, _ = optim.make_optimizer(pretrain.get_config('size=tiny').optim, 10)
  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'data': 2, 'fsdp': 2, 'tensor': 2}))
  rules = sharding.DEFAULT_RULES
  loaded = _params(task, seed=3)
  flat = setup_lib.match_params(_fresh(task), loaded, 'ckpt')
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state, shardings = step_lib.init_state(task, tx, mesh, rules,
                                           jax.random.key(0), flat)
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(loaded)):
    np.testing.assert_array_equal(np.asarray(a), b)
  assert jax.tree.leaves(state.params)[0].sharding == jax.tree.leaves(
      shardings.params)[0]
  # The Adam moments start at zero for loaded params too.
  moments = [x for x in jax.tree.leaves(state.opt_state) if x.ndim]
  assert moments and all(float(jnp.abs(x).max()) == 0.0 for x in moments)


def test_dropped_mesh_axis_is_logged(caplog):
  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'data': 2, 'fsdp': 1, 'tensor': 4}))
  tree = {'w': nn.Partitioned(jax.ShapeDtypeStruct((10, 8), jnp.float32),
                              names=('vocab', 'embed'))}
  with caplog.at_level(logging.INFO):
    out = sharding.logical_shardings(mesh, tree, sharding.DEFAULT_RULES)
  assert out['w'].spec[0] is None  # 'vocab' would be on tensor.
  assert 'size 10 is not divisible by mesh axes tensor' in caplog.text


# --- Evaluation over every example. --------------------------------------


def test_sums_over_counts_every_example_once():
  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'data': -1, 'fsdp': 1, 'tensor': 1}))
  n = 13  # One full batch of 8 and a partial one of 5.
  feats = {'attention_mask': np.ones((n, 4), np.int32),
           'value': np.arange(1, n + 1, dtype=np.float32)}

  @jax.jit
  def eval_step(params, batch, rng):
    del params, rng
    real = (batch['attention_mask'].sum(-1) > 0).astype(jnp.float32)
    return ({'rows': real.sum(), 'value': (batch['value'] * real).sum()},
            {'rows': jnp.float32(0.0), 'value': real.sum()})  # rows: a count

  with jax.set_mesh(mesh):
    m = evaluation.sums_over(eval_step, None, feats, 8, mesh,
                             jax.random.key(0))
  assert m['rows'] == n  # The last, partial batch counts: 8 + 5.
  assert m['value'] == pytest.approx(np.mean(np.arange(1, n + 1)))


def test_pretraining_sentence_loss_ignores_padding_rows():
  task = _task('mlm_nsp')
  batch = task.dummy_batch(4)
  batch['attention_mask'][2:] = 0  # Evaluation padding rows.
  norms = task.normalizers(task.prepare(
      {k: jnp.asarray(v) for k, v in batch.items()}, jax.random.key(0), False))
  assert float(norms['nsp_loss']) == 2.0


# --- Best checkpoint selection. ------------------------------------------


def _fake_task(splits=('validation_matched', 'validation_mismatched')):
  return types.SimpleNamespace(eval_splits=lambda: splits,
                               main_metric='accuracy', main_metric_mode='max')


def test_best_metric_default_is_main_metric_of_first_split():
  assert evaluators.parse_best_metric('', _fake_task()) == [
      ('validation_matched', 'accuracy')]


def test_best_metric_mean_of_several_splits():
  sel = evaluators.parse_best_metric(
      'validation_matched:accuracy, validation_mismatched:accuracy',
      _fake_task())
  assert sel == [('validation_matched', 'accuracy'),
                 ('validation_mismatched', 'accuracy')]
  ev = evaluators.PredictionEvaluator.__new__(evaluators.PredictionEvaluator)
  ev.select = sel
  score = ev._score({'validation_matched': {'accuracy': 0.5},  # pylint: disable=protected-access
                     'validation_mismatched': {'accuracy': 0.7}})
  assert score == pytest.approx(0.6)
  with pytest.raises(ValueError, match="has no metric 'accuracy'"):
    ev._score({'validation_matched': {'f1': 1.0},  # pylint: disable=protected-access
               'validation_mismatched': {'f1': 1.0}})


def test_best_metric_unknown_split_is_an_error():
  with pytest.raises(ValueError, match="no evaluation split 'test'"):
    evaluators.parse_best_metric('test:accuracy', _fake_task())


def test_evaluator_kind_follows_the_task():
  assert evaluators.EVALUATORS[_task().eval_kind] is evaluators.SumsEvaluator
  config = finetune.get_config('task=sst2')
  assert config.train.best_metric == '' and config.train.best_metric_mode == ''
