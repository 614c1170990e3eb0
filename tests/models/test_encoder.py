"""Invariants of the encoder and its variants (not implementation details)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.models import (BertEncoder, BertForPreTraining,
                             BertForQuestionAnswering,
                             BertForSequenceClassification,
                             BertForTokenClassification, config_for_size,
                             make_model, stack_layers)
from bert_jax.models import layers
from bert_jax.models.config import ModelConfig

VOCAB = 97


def tiny(**kw):
  kw.setdefault('vocab_size', VOCAB)
  return config_for_size('tiny', **kw)


def batch(b=2, l=12, seed=0, pad_from=None):
  rng = np.random.RandomState(seed)
  ids = rng.randint(5, VOCAB, size=(b, l)).astype(np.int32)
  mask = np.ones((b, l), np.int32)
  if pad_from is not None:
    mask[1, pad_from:] = 0
    ids[1, pad_from:] = 0
  types = np.zeros((b, l), np.int32)
  types[:, l // 2:] = 1
  return {'input_ids': ids, 'token_type_ids': types, 'attention_mask': mask,
          'masked_positions': np.tile(np.array([[1, 3, 5]], np.int32), (b, 1))}


def init(model, b):
  return nn.meta.unbox(model.init(jax.random.key(0), b)['params'])


def encode(config, params, b, deterministic=True, rngs=None):
  return BertEncoder(config).apply(
      {'params': params}, b['input_ids'], b['token_type_ids'],
      b['attention_mask'], deterministic=deterministic, rngs=rngs)


def test_base_parameter_count_matches_bertmodel():
  model = BertEncoder(config_for_size('base'))
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 8), jnp.int32))
  assert sum(x.size for x in jax.tree.leaves(nn.meta.unbox(shapes))) == 109_482_240


def test_size_table():
  assert config_for_size('large').num_layers == 24
  assert config_for_size('large').num_heads == 16
  assert config_for_size('mini').hidden_size == 256
  with pytest.raises(ValueError, match='huge'):
    config_for_size('huge')


@pytest.mark.parametrize('field,value', [('norm_type', 'batchnorm'),
                                         ('position_embedding', 'relative'),
                                         ('mlp_type', 'moe'),
                                         ('remat_policy', 'sometimes')])
def test_bad_config_names_field_and_choices(field, value):
  with pytest.raises(ValueError, match=f'model.{field}.*choose one of'):
    ModelConfig(**{field: value}).validate()


@pytest.mark.parametrize('variant', [
    {}, {'position_embedding': 'learned'}, {'position_embedding': 'rope'},
    {'position_embedding': 'alibi'}, {'position_embedding': 'sinusoidal'}])
def test_padding_never_changes_real_positions(variant):
  c = tiny(**variant)
  b = batch(pad_from=7)
  params = init(BertEncoder(c), b['input_ids'])
  out1 = encode(c, params, b)
  b2 = {k: v.copy() for k, v in b.items()}
  b2['input_ids'][1, 7:] = np.arange(5, 10)
  b2['token_type_ids'][1, 7:] = 0
  out2 = encode(c, params, b2)
  np.testing.assert_allclose(out1['last_hidden_state'][1, :7],
                             out2['last_hidden_state'][1, :7], atol=1e-6)
  np.testing.assert_allclose(out1['pooler_output'], out2['pooler_output'],
                             atol=1e-6)


def test_scan_equals_unrolled():
  c = tiny()
  b = batch()
  params = init(BertEncoder(c), b['input_ids'])
  scanned = stack_layers(params, c.num_layers)
  out_u = encode(c, params, b)
  out_s = encode(c.replace(scan_layers=True), scanned, b)
  np.testing.assert_allclose(out_u['last_hidden_state'],
                             out_s['last_hidden_state'], atol=1e-5)
  # Scan's own init has the stacked layout.
  p = init(BertEncoder(c.replace(scan_layers=True)), b['input_ids'])
  assert jax.tree.map(np.shape, p['layers']) == jax.tree.map(np.shape, scanned['layers'])


def test_remat_does_not_change_outputs_or_grads():
  b = batch()
  c = tiny()
  params = init(BertEncoder(c), b['input_ids'])

  def loss(p, config):
    return jnp.sum(encode(config, p, b)['last_hidden_state'] ** 2)

  g1 = jax.grad(loss)(params, c)
  g2 = jax.grad(loss)(params, c.replace(remat_policy='full'))
  for a, bb in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, bb, rtol=1e-5, atol=1e-6)


def test_jit_equals_no_jit():
  c = tiny()
  b = batch()
  params = init(BertEncoder(c), b['input_ids'])
  eager = encode(c, params, b)
  jitted = jax.jit(lambda p, bb: encode(c, p, bb))(params, b)
  np.testing.assert_allclose(eager['last_hidden_state'],
                             jitted['last_hidden_state'], atol=1e-5)


def test_dropout_only_when_training():
  c = tiny()
  b = batch()
  params = init(BertEncoder(c), b['input_ids'])
  det = encode(c, params, b)
  det2 = encode(c, params, b)
  np.testing.assert_array_equal(det['last_hidden_state'], det2['last_hidden_state'])
  train = encode(c, params, b, deterministic=False,
                 rngs={'dropout': jax.random.key(3)})
  assert not np.allclose(det['last_hidden_state'], train['last_hidden_state'])


VARIANTS = [
    {}, {'norm_placement': 'pre'}, {'norm_type': 'rmsnorm'},
    {'position_embedding': 'sinusoidal'}, {'position_embedding': 'rope'},
    {'position_embedding': 'alibi'}, {'mlp_type': 'geglu'},
    {'mlp_type': 'swiglu'}, {'use_bias': False}, {'tie_word_embeddings': False},
    {'bilstm_layers': 2, 'bilstm_hidden': 16}, {'scan_layers': True},
    {'remat_policy': 'dots', 'scan_layers': True},
    {'dtype': 'bfloat16'},
]


@pytest.mark.parametrize('variant', VARIANTS, ids=lambda v: ','.join(
    f'{k}={x}' for k, x in v.items()) or 'bert')
def test_every_variant_forward_backward_finite(variant):
  c = tiny(**variant)
  b = batch(pad_from=9)
  model = BertForPreTraining(c)
  params = init(model, b)

  def loss(p):
    out = model.apply({'params': p}, b, deterministic=False,
                      rngs={'dropout': jax.random.key(1)})
    return jnp.mean(out['mlm_logits'] ** 2) + jnp.mean(out['nsp_logits'] ** 2)

  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert np.isfinite(value)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  if variant.get('tie_word_embeddings', True):
    assert 'decoder' not in params['mlm']
    # The tied decoder gets gradient through the word-embedding table.
    assert np.abs(grads['bert']['embeddings']['word_embeddings']['embedding']).sum() > 0
  else:
    assert params['mlm']['decoder']['kernel'].shape == (c.hidden_size, VOCAB)
  if variant.get('bilstm_layers'):
    assert 'bilstm' in params['bert']
  if variant.get('dtype') == 'bfloat16':
    assert params['bert']['embeddings']['word_embeddings']['embedding'].dtype == jnp.float32


def test_logical_axis_names_on_every_param():
  c = tiny()
  boxed = BertForPreTraining(c).init(jax.random.key(0), batch())['params']
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  for leaf in leaves:
    assert isinstance(leaf, nn.LogicallyPartitioned), leaf
    assert len(leaf.names) == leaf.value.ndim


def _scores(config, q, k, positions):
  """Attention logits the layer would compute, including RoPE/ALiBi."""
  if config.position_embedding == 'rope':
    q = layers.apply_rope(q, positions, config.rope_base)
    k = layers.apply_rope(k, positions, config.rope_base)
  s = jnp.einsum('blhk,bshk->bhls', q, k)
  if config.position_embedding == 'alibi':
    s = s + layers.alibi_bias(positions, config.num_heads)
  return s


@pytest.mark.parametrize('kind', ['rope', 'alibi'])
def test_position_scores_depend_only_on_relative_position(kind):
  c = tiny(position_embedding=kind)
  rng = np.random.RandomState(0)
  # The same content vector at every position: scores may only vary with i - j.
  q = np.broadcast_to(rng.randn(1, 1, c.num_heads, c.head_dim), (1, 10, c.num_heads, c.head_dim))
  k = np.broadcast_to(rng.randn(1, 1, c.num_heads, c.head_dim), (1, 10, c.num_heads, c.head_dim))
  pos = jnp.arange(10)[None]
  s = np.asarray(_scores(c, jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32), pos))
  shifted = np.asarray(_scores(c, jnp.asarray(q, jnp.float32), jnp.asarray(k, jnp.float32), pos + 37))
  np.testing.assert_allclose(s, shifted, atol=1e-4)
  for d in range(-3, 4):
    diag = np.stack([s[0, :, i, i + d] for i in range(max(0, -d), min(10, 10 - d))])
    np.testing.assert_allclose(diag, np.broadcast_to(diag[0], diag.shape), atol=1e-4)


def test_alibi_slopes_non_power_of_two():
  assert layers.alibi_slopes(8)[0] == pytest.approx(0.5)
  s = layers.alibi_slopes(12)
  assert len(s) == 12 and np.all(s > 0) and len(set(s.tolist())) == 12


def test_packed_rows_attend_within_their_example():
  c = tiny(position_embedding='rope')
  ids = np.random.RandomState(0).randint(5, VOCAB, size=(1, 10)).astype(np.int32)
  packed = np.array([[1, 1, 1, 1, 2, 2, 2, 2, 2, 0]], np.int32)
  pos = np.array([[0, 1, 2, 3, 0, 1, 2, 3, 4, 0]], np.int32)
  params = init(BertEncoder(c), ids)
  run = lambda i, m, p: BertEncoder(c).apply({'params': params}, i, None, m, p)
  whole = run(ids, packed, pos)['last_hidden_state']
  alone = run(ids[:, 4:9], np.ones((1, 5), np.int32), pos[:, 4:9])['last_hidden_state']
  np.testing.assert_allclose(whole[0, 4:9], alone[0], atol=1e-5)


def test_task_heads_shapes():
  c = tiny()
  b = batch()
  for model, key, shape in [
      (BertForSequenceClassification(c, num_labels=3), 'logits', (2, 3)),
      (BertForTokenClassification(c, num_labels=5), 'logits', (2, 12, 5)),
      (BertForQuestionAnswering(c), 'start_logits', (2, 12)),
      (make_model('sequence_classification', c, num_labels=1), 'logits', (2, 1))]:
    params = init(model, b)
    out = model.apply({'params': params}, b)
    assert out[key].shape == shape
    assert out[key].dtype == jnp.float32
  with pytest.raises(ValueError, match='choose one of'):
    make_model('seq2seq', c)


@pytest.mark.parametrize('kind', ['learned', 'sinusoidal'])
def test_position_table_does_not_drown_the_token_at_init(kind):
  """After the embedding LayerNorm, different tokens at one position stay
  apart at init. A fixed sin/cos table of amplitude 1 beside word embeddings
  of std 0.02 made them all alike (cosine ~1): the model first had to grow
  its word table ~35x, and at 400 steps sinusoidal sat at the frequency
  plateau in the length study (docs/findings.md, finding 2)."""
  from bert_jax.models.encoder import Embeddings  # pylint: disable=g-import-not-at-top
  c = tiny(position_embedding=kind, hidden_dropout=0.0)
  ids = np.arange(5, 5 + 32, dtype=np.int32)[None]       # 32 different tokens,
  positions = np.full_like(ids, 7)                         # all at position 7.
  types = np.zeros_like(ids)
  m = Embeddings(c)
  variables = m.init(jax.random.key(0), ids, types, positions, True)
  x = np.asarray(m.apply(variables, ids, types, positions, True)[0], np.float64)
  x /= np.linalg.norm(x, axis=-1, keepdims=True)
  cos = x @ x.T
  mean_off_diagonal = (cos.sum() - np.trace(cos)) / (32 * 31)
  assert mean_off_diagonal < 0.8, mean_off_diagonal
