"""bert_jax.models.dropout: 16-bit draws, the same contract as flax's Dropout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.models import dropout


def _apply(x, rate, seed=0, deterministic=False):
  return dropout.Dropout(rate=rate).apply(
      {}, x, deterministic=deterministic, rngs={'dropout': jax.random.key(seed)})


@pytest.mark.parametrize('rate', [0.1, 0.5, 0.9])
def test_drops_the_rate_and_keeps_the_mean(rate):
  n = 1 << 20
  y = np.asarray(_apply(jnp.ones((n,)), rate))
  dropped = float((y == 0).mean())
  sigma = np.sqrt(rate * (1 - rate) / n)
  assert abs(dropped - rate) < 5 * sigma, (dropped, rate)
  kept = y[y != 0]
  np.testing.assert_allclose(kept, 1.0 / (1.0 - dropout.drop_fraction(rate)),
                             rtol=1e-6)
  # Inverted dropout: the expectation is the input.
  assert abs(y.mean() - 1.0) < 5 * sigma / (1 - rate)


def test_fraction_is_the_16_bit_threshold():
  assert dropout.drop_fraction(0.1) == round(0.1 * 65536) / 65536
  assert abs(dropout.drop_fraction(0.1) - 0.1) < 1e-5
  assert dropout.drop_fraction(0.0) == 0.0


def test_odd_shapes_and_independent_elements():
  x = jnp.ones((3, 5, 7))  # 105 elements: an odd count of 16-bit halves.
  y = _apply(x, 0.5, seed=3)
  assert y.shape == x.shape
  # Both halves of each drawn word are used, and not equal to each other.
  y_big = np.asarray(_apply(jnp.ones((1 << 16,)), 0.5)).reshape(-1, 2) == 0
  agree = float((y_big[:, 0] == y_big[:, 1]).mean())
  assert 0.45 < agree < 0.55, agree


def test_deterministic_and_zero_rate_are_identity():
  x = jnp.arange(12.0).reshape(3, 4)
  np.testing.assert_array_equal(_apply(x, 0.3, deterministic=True), x)
  np.testing.assert_array_equal(_apply(x, 0.0), x)


def test_seeds_give_different_masks_and_dtype_is_kept():
  x = jnp.ones((4096,), jnp.bfloat16)
  a, b = _apply(x, 0.1, seed=0), _apply(x, 0.1, seed=1)
  assert a.dtype == jnp.bfloat16
  assert not np.array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(_apply(x, 0.1, seed=0)))


@pytest.mark.parametrize('rate', [-0.1, 1.0, 1.5])
def test_bad_rate_is_a_clear_error(rate):
  with pytest.raises(ValueError, match='dropout rate'):
    _apply(jnp.ones((4,)), rate)
