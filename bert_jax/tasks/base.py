"""The contract between a task and the generic trainer.

A task turns a (device) batch into *sums* and *normalizers*: every metric is
``sums[k] / norms[k]`` and the loss is the sum of the metrics named in
``loss_keys``. Normalizers are computed once on the full batch (they never
depend on the parameters), so gradient accumulation over micro-batches adds
up to exactly the gradient of the full batch, and evaluation averages are
exact over any number of batches.
"""

from __future__ import annotations

import abc
from typing import Any

import flax.linen as nn
import jax
import numpy as np

Array = jax.Array


class Task(abc.ABC):
  """A trainable objective over a model."""

  model: nn.Module
  loss_keys: tuple[str, ...]
  main_metric: str = 'loss'  # used to pick the best checkpoint
  main_metric_mode: str = 'min'

  @abc.abstractmethod
  def dummy_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    """A host batch of the right shapes and dtypes, for init and tracing."""

  def prepare(self, batch: dict[str, Array], rng: Array, train: bool
              ) -> dict[str, Array]:
    """On-device preprocessing of the full batch (e.g. dynamic masking)."""
    del rng, train
    return batch

  @abc.abstractmethod
  def normalizers(self, batch: dict[str, Array]) -> dict[str, Array]:
    """Denominator of each metric over the full (prepared) batch."""

  @abc.abstractmethod
  def sums(self, params: Any, batch: dict[str, Array], rng: Array,
           train: bool) -> dict[str, Array]:
    """Numerator of each metric over this (micro-)batch, float32 scalars."""

  def init_model_inputs(self, batch: dict[str, Any]) -> dict[str, Any]:
    return batch


def combine(sums: dict[str, Array], norms: dict[str, Array],
            loss_keys: tuple[str, ...]) -> tuple[Array, dict[str, Array]]:
  """(loss, metrics) from sums and normalizers."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  metrics = {k: sums[k] / jnp.maximum(norms[k], 1.0) for k in sums}
  loss = sum(metrics[k] for k in loss_keys)
  metrics['loss'] = loss
  return loss, metrics
