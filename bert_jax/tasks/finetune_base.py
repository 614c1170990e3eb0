"""What a fine-tuning task gives the trainer, beyond ``Task``.

Training goes through ``Task`` (sums / normalizers). Evaluation needs whole
predictions (F1 over entities, SQuAD spans, Matthews correlation), so a
fine-tuning task also has a jittable ``predict`` and host-side ``metrics``
over the outputs of a whole evaluation split, in order. The trainer pads the
last evaluation batch with copies of row 0 and strips them again, so tasks
never see padding rows.
"""

from __future__ import annotations

import abc
from typing import Any

import jax
import numpy as np

from bert_jax.tasks.base import Task

Array = jax.Array


class FinetuneTask(Task):
  """A supervised task: fixed-shape features in, metrics and predictions out."""

  name: str
  main_metric: str
  main_metric_mode: str = 'max'

  @abc.abstractmethod
  def train_features(self) -> dict[str, np.ndarray]:
    """Training features, each [N, ...]: model inputs plus labels."""

  @abc.abstractmethod
  def eval_features(self) -> dict[str, dict[str, np.ndarray]]:
    """Evaluation split name -> features (e.g. 'validation_matched')."""

  @abc.abstractmethod
  def predict(self, params: Any, batch: dict[str, Array]) -> dict[str, Array]:
    """Deterministic outputs per example (logits, ...); jitted by the trainer."""

  @abc.abstractmethod
  def metrics(self, split: str, outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Metrics of one split from the outputs of all its examples, in order."""

  def write_predictions(self, split: str, outputs: dict[str, np.ndarray],
                        directory: str) -> list[str]:
    """Writes prediction files for SPLIT under DIRECTORY; returns their paths."""
    del split, outputs, directory
    return []

  def metadata(self) -> dict[str, Any]:
    """JSON-able facts saved with the checkpoint (labels, task name...)."""
    return {'task': self.name}

  def dummy_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    feats = self.train_features()
    return {k: np.repeat(v[:1], batch_size, axis=0) for k, v in feats.items()}
