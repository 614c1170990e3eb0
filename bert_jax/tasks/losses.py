"""Losses every task shares, as weighted sums (see ``tasks.base``).

Shape letters: N any leading shape (batch, or batch x positions), C classes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def xent_and_accuracy(logits_NC: Array, labels_N: Array,
                      weights_N: Array | None = None) -> tuple[Array, Array]:
  """(sum of weighted cross-entropy, sum of weighted hits), float32 scalars.

  Labels below 0 (e.g. -100 for ignored positions) must carry weight 0; they
  are clipped to 0 so that the gather stays in range.
  """
  logits_NC = logits_NC.astype(jnp.float32)
  if weights_N is None:
    weights_N = jnp.ones(labels_N.shape, jnp.float32)
  weights_N = weights_N.astype(jnp.float32)
  safe_N = jnp.maximum(labels_N, 0)
  xent_N = optax.softmax_cross_entropy_with_integer_labels(logits_NC, safe_N)
  hit_N = (jnp.argmax(logits_NC, -1) == safe_N).astype(jnp.float32)
  return jnp.sum(xent_N * weights_N), jnp.sum(hit_N * weights_N)
