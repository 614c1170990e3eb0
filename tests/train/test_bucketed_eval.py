"""Prediction sorted by length and cut to buckets gives the unsorted,
full-length outputs, in the original order, with one compile per bucket."""

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from bert_jax.models import config_for_size
from bert_jax.models.heads import BertForSequenceClassification
from bert_jax.train import evaluation
from bert_jax.train import precompile
from bert_jax.train import sharding

L = 32
AXES = {'input_ids': 0, 'token_type_ids': 0, 'attention_mask': 0, 'echo': 0}


def _setup():
  mc = config_for_size('tiny', vocab_size=50, hidden_size=32, num_heads=2,
                       intermediate_size=64, max_position_embeddings=L)
  model = BertForSequenceClassification(mc, 3)
  rng = np.random.default_rng(0)
  n = 21  # Not a multiple of the batch: the last batch is filled.
  # Mostly short rows, as real sentences: sorted, they fill short buckets.
  lengths = np.concatenate([rng.integers(3, 9, 10), rng.integers(9, 17, 8),
                            [30, 25, 32]])[rng.permutation(n)]
  mask = (np.arange(L)[None] < lengths[:, None]).astype(np.int32)
  feats = {'input_ids': (rng.integers(5, 50, (n, L)) * mask).astype(np.int32),
           'token_type_ids': np.zeros((n, L), np.int32),
           'attention_mask': mask,
           'example_index': np.arange(n, dtype=np.int32)}
  params = nn.meta.unbox(model.init(jax.random.key(0), feats)['params'])
  return model, feats, params, mask, n


def test_sorted_bucketed_predictions_equal_plain_ones():
  model, feats, params, mask, n = _setup()
  traces = []

  def predict(p, batch):
    traces.append(batch['input_ids'].shape)  # Runs once per compile.
    logits = model.apply({'params': p}, batch, deterministic=True)['logits']
    # A token-axis output: padded back to L with zeros.
    return {'logits': logits, 'echo': batch['attention_mask'] * 2,
            'example_index': batch['example_index']}

  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'data': -1, 'fsdp': 1, 'tensor': 1}))
  fn = jax.jit(predict)
  with jax.set_mesh(mesh):
    plain = evaluation.predict_over(fn, params, feats, 8, mesh)
    seen = set()
    bucketed = evaluation.predict_over(fn, params, feats, 8, mesh,
                                       buckets=(8, 16, 24, 32),
                                       length_axes=AXES, lengths_seen=seen)
  np.testing.assert_array_equal(bucketed['example_index'], np.arange(n))
  np.testing.assert_allclose(bucketed['logits'], plain['logits'], atol=1e-5)
  np.testing.assert_array_equal(bucketed['echo'], 2 * mask)
  assert np.array_equal(np.argmax(bucketed['logits'], -1),
                        np.argmax(plain['logits'], -1))
  # One trace per shape: the plain run's (32) and one per bucket used.
  assert seen == {8, 16, 32}
  assert sorted(t[1] for t in traces) == [8, 16, 32]


def test_prediction_programs_compiled_ahead_serve_every_batch():
  """Every batch of a bucketed evaluation (and of an uncut one) runs a
  program compiled ahead, never the jitted function compiled on first use."""
  model, feats, params, _, _ = _setup()

  def predict(p, batch):
    return {'logits': model.apply({'params': p}, batch,
                                  deterministic=True)['logits']}

  class Counted:  # The jitted function, its direct calls counted.
    def __init__(self):
      self.fn, self.calls = jax.jit(predict), 0

    def lower(self, *args):
      return self.fn.lower(*args)

    def __call__(self, *args):
      self.calls += 1
      return self.fn(*args)

  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'data': -1, 'fsdp': 1, 'tensor': 1}))
  with jax.set_mesh(mesh):
    params = jax.device_put(params, sharding.replicated(mesh))
    want = evaluation.predict_over(jax.jit(predict), params, feats, 8, mesh)
    for buckets in ((8, 16, 24, 32), None):
      fn, compiler = Counted(), precompile.Compiler(mesh, [], workers=2)
      programs, widths = precompile.prediction_programs(
          fn, params, {'dev': feats}, 8, buckets, AXES, compiler)
      assert widths == ([8, 16, 32] if buckets else [None])
      assert len(programs) == len(widths)
      seen = set()
      got = evaluation.predict_over(programs, params, feats, 8, mesh,
                                    buckets=buckets, length_axes=AXES,
                                    lengths_seen=seen)
      compiler.close()
      assert fn.calls == 0  # Every batch had its program compiled ahead.
      if buckets:
        assert seen == set(widths)
      np.testing.assert_allclose(got['logits'], want['logits'], atol=1e-5)
