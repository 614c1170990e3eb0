"""Dropout that draws 16 random bits per element instead of 32.

``flax.linen.Dropout`` draws a float32 uniform per element
(``jax.random.bernoulli``); with the partitionable threefry that jax uses by
default, that is one threefry2x32 hash per element. On a CPU the hashes are
a visible share of a BERT train step (two hidden dropouts and one over the
[B, H, L, L] attention probabilities per layer). This module draws half as
many 32-bit words and splits each into two 16-bit halves, then keeps an
element when its half is at or above ``round(rate * 2**16)``.

The dropped fraction is that threshold / 2**16 (0.1 -> 0.100006), and kept
elements are scaled by 1 / (1 - that fraction), so the output's expectation is
still exactly its input. The rng collection is ``dropout``, as in flax, and
``deterministic`` means the same.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_LEVELS = 1 << 16


def keep_mask(rng: jax.Array, rate: float, shape: tuple[int, ...]) -> jax.Array:
  """Boolean mask of SHAPE, each element kept with prob 1 - drop_fraction(rate)."""
  size = int(np.prod(shape))
  words = jax.random.bits(rng, ((size + 1) // 2,), jnp.uint32)
  halves = jax.lax.bitcast_convert_type(words, jnp.uint16).reshape(-1)[:size]
  return (halves >= jnp.uint16(_threshold(rate))).reshape(shape)


def drop_fraction(rate: float) -> float:
  """The fraction of elements really dropped at RATE (a multiple of 2**-16)."""
  return _threshold(rate) / _LEVELS


def _threshold(rate: float) -> int:
  if not 0.0 <= rate < 1.0:
    raise ValueError(f'dropout rate must be in [0, 1), got {rate}.')
  return min(int(round(rate * _LEVELS)), _LEVELS - 1)


class Dropout(nn.Module):
  """Inverted dropout with 16-bit random draws (see the module docstring)."""
  rate: float
  rng_collection: str = 'dropout'

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    if deterministic or self.rate == 0.0:
      return x
    rng = self.make_rng(self.rng_collection)
    keep = keep_mask(rng, self.rate, x.shape)
    scale = 1.0 / (1.0 - drop_fraction(self.rate))
    return jnp.where(keep, x * jnp.asarray(scale, x.dtype), jnp.zeros_like(x))
