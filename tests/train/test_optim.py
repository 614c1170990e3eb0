"""Tests of bert_jax.train.optim: LAMB's exclusions."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bert_jax.train import optim
from bert_jax.configs import common


def _first_update(tx, params, grads):
  updates, _ = tx.update(grads, tx.init(params), params)
  return updates


def test_lamb_trust_ratio_skips_biases_and_norms():
  # As the original LAMB (exclude_from_layer_adaptation) and NVIDIA's: what
  # weight decay skips gets the plain Adam step, no trust ratio.
  cfg = common.optim_group(name='lamb', learning_rate=0.1, warmup_steps=0,
                           schedule='constant', grad_clip_norm=0.0,
                           weight_decay=0.01)
  tx, _ = optim.make_optimizer(cfg, 10)
  params = {'dense': {'kernel': jnp.full((2, 2), 3.0),
                      'bias': jnp.full((4,), 10.0)},
            'layer_norm': {'scale': jnp.full((4,), 5.0)}}
  grads = {'dense': {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones((4,))},
           'layer_norm': {'scale': -jnp.ones((4,))}}
  u = _first_update(tx, params, grads)
  # Adam's first step is g / (|g| + eps): +-1 here, times -lr.
  adam_step = 1.0 / (1.0 + cfg.eps)
  np.testing.assert_allclose(u['dense']['bias'], -0.1 * adam_step, rtol=1e-5)
  np.testing.assert_allclose(u['layer_norm']['scale'], 0.1 * adam_step,
                             rtol=1e-5)
  # Kernels keep the trust ratio ||w|| / ||adam + decay||, as optax.lamb.
  ref = _first_update(optax.lamb(0.1, eps=cfg.eps, weight_decay=0.01,
                                 mask=optim.decay_mask), params, grads)
  np.testing.assert_allclose(u['dense']['kernel'], ref['dense']['kernel'],
                             rtol=1e-5)
  # (A uniform kernel's step is scaled to its own size: -lr * 3.)
  assert float(u['dense']['kernel'][0, 0]) == pytest.approx(-0.3, rel=1e-5)
  # optax.lamb alone would scale the bias by ||b|| / ||adam step|| = 10.
  assert float(ref['dense']['bias'][0]) == pytest.approx(-1.0, rel=1e-5)


def test_adamw_unchanged_by_lamb_exclusions():
  cfg = common.optim_group(name='adamw', learning_rate=0.1, warmup_steps=0,
                           schedule='constant', grad_clip_norm=0.0)
  tx, _ = optim.make_optimizer(cfg, 10)
  params = {'dense': {'kernel': jnp.full((2, 2), 3.0),
                      'bias': jnp.full((4,), 10.0)}}
  grads = {'dense': {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones((4,))}}
  ref = optax.adamw(0.1, eps=cfg.eps, weight_decay=cfg.weight_decay,
                    mask=optim.decay_mask)
  u, r = _first_update(tx, params, grads), _first_update(ref, params, grads)
  for k in ('kernel', 'bias'):
    np.testing.assert_allclose(u['dense'][k], r['dense'][k], rtol=1e-5)
