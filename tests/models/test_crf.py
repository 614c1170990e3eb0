"""The CRF against brute-force enumeration of every tag path (T=3, W=4)."""

import itertools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.models.crf import CRF

T, W = 3, 4
# Row masks: full, padded tail, a hole in the middle, a masked first
# position, and nothing at all (one empty path of score 0).
MASKS = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 1], [0, 1, 1, 0],
                  [0, 0, 0, 0]], np.int32)


@pytest.fixture(scope='module')
def setup():
  rng = np.random.RandomState(0)
  emissions = rng.normal(size=(len(MASKS), W, T)).astype(np.float32)
  crf = CRF(T)
  params = crf.init(jax.random.key(0), emissions, np.zeros((len(MASKS), W),
                                                            np.int32), MASKS)
  params = jax.tree.map(np.asarray, nn.meta.unbox(params))
  # Larger transitions than the init, so a wrong recursion cannot hide.
  p = params['params']
  p['transitions'] = rng.normal(size=(T, T)).astype(np.float32)
  p['start_transitions'] = rng.normal(size=T).astype(np.float32)
  p['end_transitions'] = rng.normal(size=T).astype(np.float32)
  return crf, params, emissions


def path_score(p, e_WT, mask_W, tags):
  """Score of TAGS over the kept positions of one row, by the definition."""
  kept = [i for i in range(W) if mask_W[i]]
  if not kept:
    return 0.0
  s = p['start_transitions'][tags[0]] + p['end_transitions'][tags[-1]]
  s += sum(e_WT[i, t] for i, t in zip(kept, tags))
  s += sum(p['transitions'][a, b] for a, b in zip(tags, tags[1:]))
  return float(s)


def brute_force(p, e_WT, mask_W):
  """(log Z, best path on kept positions) by enumerating every path."""
  n = int(mask_W.sum())
  paths = list(itertools.product(range(T), repeat=n))
  scores = np.array([path_score(p, e_WT, mask_W, y) for y in paths])
  log_z = float(np.log(np.sum(np.exp(scores - scores.max()))) + scores.max())
  return log_z, paths[int(np.argmax(scores))], scores


def test_log_likelihood_matches_enumeration(setup):
  crf, params, emissions = setup
  p = params['params']
  rng = np.random.RandomState(1)
  tags = rng.randint(0, T, size=(len(MASKS), W)).astype(np.int32)
  ll = np.asarray(crf.apply(params, emissions, tags, MASKS,
                            method=CRF.log_likelihood))
  for b in range(len(MASKS)):
    log_z, _, _ = brute_force(p, emissions[b], MASKS[b])
    kept = [tags[b, i] for i in range(W) if MASKS[b, i]]
    want = path_score(p, emissions[b], MASKS[b], kept) - log_z
    np.testing.assert_allclose(ll[b], want, rtol=1e-5, atol=1e-5)
  assert ll[-1] == 0.0  # Empty row: the one empty path has probability 1.


def test_probabilities_sum_to_one(setup):
  crf, params, emissions = setup
  b = 0
  paths = np.array(list(itertools.product(range(T), repeat=W)), np.int32)
  e = np.repeat(emissions[b:b + 1], len(paths), 0)
  m = np.repeat(MASKS[b:b + 1], len(paths), 0)
  ll = crf.apply(params, e, paths, m, method=CRF.log_likelihood)
  np.testing.assert_allclose(float(jnp.sum(jnp.exp(ll))), 1.0, rtol=1e-5)


def test_viterbi_matches_enumeration(setup):
  crf, params, emissions = setup
  p = params['params']
  tags = np.asarray(crf.apply(params, emissions, MASKS,
                              method=CRF.viterbi_decode))
  assert tags.shape == (len(MASKS), W) and tags.dtype == np.int32
  for b in range(len(MASKS)):
    _, best, scores = brute_force(p, emissions[b], MASKS[b])
    got = tuple(int(tags[b, i]) for i in range(W) if MASKS[b, i])
    # Equal to the argmax path (or tied with it to float precision).
    assert got == best or np.isclose(
        path_score(p, emissions[b], MASKS[b], got), scores.max(), atol=1e-5)
    assert all(tags[b, i] == 0 for i in range(W) if not MASKS[b, i])


def test_jit_and_finite_gradients(setup):
  crf, params, emissions = setup
  tags = np.zeros((len(MASKS), W), np.int32)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def loss(params, e):
    return -jnp.sum(crf.apply(params, e, tags, MASKS,
                              method=CRF.log_likelihood))

  g_params, g_e = jax.grad(loss, argnums=(0, 1))(params, emissions)
  for leaf in jax.tree.leaves((g_params, g_e)):
    assert np.all(np.isfinite(leaf))
  assert np.any(np.asarray(g_params['params']['transitions']) != 0)
  # Masked positions get no gradient: they are not part of the chain.
  np.testing.assert_array_equal(np.asarray(g_e)[MASKS == 0], 0.0)
  loss(params, emissions + 1.0)  # Same shapes: no retrace.
  decode = jax.jit(lambda p, e: crf.apply(p, e, MASKS,
                                          method=CRF.viterbi_decode))
  assert decode(params, emissions).shape == (len(MASKS), W)


def test_bfloat16_emissions_run_in_float32(setup):
  crf, params, emissions = setup
  ll = crf.apply(params, jnp.asarray(emissions, jnp.bfloat16),
                 np.zeros((len(MASKS), W), np.int32), MASKS,
                 method=CRF.log_likelihood)
  assert ll.dtype == jnp.float32


def test_bad_shapes_fail_loudly(setup):
  crf, params, emissions = setup
  with pytest.raises(ValueError, match=r'\[B, W, 3\]'):
    crf.apply(params, emissions[..., :2], MASKS, method=CRF.viterbi_decode)
  with pytest.raises(ValueError, match='mask'):
    crf.apply(params, emissions, MASKS[:, :2], method=CRF.viterbi_decode)
