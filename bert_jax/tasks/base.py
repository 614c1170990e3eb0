"""The contract between a task and the generic trainer.

A task owns its data (features built on first use), its model, its losses
and its evaluation. Training goes through *sums* and *normalizers*: every
metric is ``sums[k] / norms[k]`` and the loss is the sum of the metrics named
in ``loss_keys``. Normalizers are computed once on the full batch (they never
depend on the parameters), so gradient accumulation over micro-batches adds up
to exactly the gradient of the full batch, and evaluation averages are exact
over any number of batches.

Evaluation is of one of two kinds, chosen by ``eval_kind`` when the run is set
up: ``'sums'`` averages the training metrics over held-out examples
(pretraining); ``'predictions'`` runs ``predict`` over whole splits and hands
the outputs to ``evaluate_split`` (fine-tuning: F1 over entities, SQuAD spans
and Matthews correlation need whole predictions).
"""

from __future__ import annotations

import abc
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
# Feature name -> (shape of one example, dtype).
FeatureSpec = dict[str, tuple[tuple[int, ...], Any]]


class Task(abc.ABC):
  """A trainable objective over a model, with its data and evaluation."""

  name: str
  model: nn.Module
  loss_keys: tuple[str, ...]
  main_metric: str = 'loss'  # picks the best checkpoint
  main_metric_mode: str = 'min'
  eval_kind: str = 'sums'    # 'sums' | 'predictions' (see the module docstring)

  @abc.abstractmethod
  def feature_spec(self) -> FeatureSpec:
    """Shape (without the batch) and dtype of every feature of a batch."""

  def dummy_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    """A host batch of the right shapes and dtypes, for init and tracing.

    Built from ``feature_spec`` alone: an evaluation-only run may have no
    training data. Every position is attended, the rest is zeros.
    """
    batch = {k: np.zeros((batch_size,) + tuple(shape), dtype)
             for k, (shape, dtype) in self.feature_spec().items()}
    if 'attention_mask' in batch:
      batch['attention_mask'][:] = 1
    return batch

  @abc.abstractmethod
  def train_features(self) -> Any:
    """Training features ({name: [N, ...]}) or a grain source of them."""

  @abc.abstractmethod
  def eval_features(self) -> dict[str, dict[str, np.ndarray]]:
    """Evaluation split name -> features {name: [N, ...]}, in order."""

  def eval_splits(self) -> tuple[str, ...]:
    """Names of the evaluation splits, without building their features."""
    return tuple(self.eval_features())

  def length_axes(self) -> dict[str, int]:
    """Features and ``predict`` outputs whose axis 1 runs along the tokens.

    Name -> how many fewer entries than tokens that axis has (0 for
    ``[B, L]``). Batches are cut to a length bucket along these axes
    (``bert_jax.data.length_buckets``) and prediction outputs padded back;
    {} (the default) keeps every batch at its full length.
    """
    return {}

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

  def apply(self, params: Any, batch: dict[str, Array], rng: Array | None,
            train: bool, **kwargs) -> Any:
    """The model on BATCH: dropout (from RNG) only when training."""
    return self.model.apply({'params': params}, batch, deterministic=not train,
                            rngs={'dropout': rng} if train else None, **kwargs)

  def metadata(self) -> dict[str, Any]:
    """JSON-able facts saved with the checkpoint (labels, task name...)."""
    return {'task': self.name}


class FinetuneTask(Task):
  """A supervised task over examples read at setup.

  Subclasses build features from examples in ``build_features`` and turn a
  whole split's outputs into metrics and prediction files in
  ``evaluate_split``; this class caches the features, so each split is
  tokenized once, on first use. The trainer pads the last evaluation batch
  and strips the padding again, so tasks never see padding rows.
  """

  main_metric_mode = 'max'
  eval_kind = 'predictions'

  def __init__(self, name: str, data_config: Any, tokenizer: Any,
               model_config: Any, train: list[Any],
               evals: dict[str, list[Any]]):
    """Args (the same, in this order, for every fine-tuning task):

    Args:
      name: The task name (``config.task``).
      data_config: ``config.data`` (max_seq_length and the task's fields).
      tokenizer: A ``bert_jax.text.Tokenizer``.
      model_config: The encoder's ``ModelConfig``.
      train: Training examples (may be empty for evaluation only).
      evals: Evaluation split name -> examples, in evaluation order.
    """
    self.name = name
    self.data = data_config
    self.tokenizer = tokenizer
    self.model_config = model_config
    self.train_examples = list(train)
    self.eval_examples = {s: list(e) for s, e in evals.items()}
    self._features: dict[str, Any] = {}

  @abc.abstractmethod
  def build_features(self, examples: list[Any], split: str | None
                     ) -> dict[str, np.ndarray]:
    """Features {name: [N, ...]} of EXAMPLES (SPLIT None = training)."""

  def _cached(self, key: str, examples: list[Any], split: str | None):
    if key not in self._features:
      self._features[key] = self.build_features(examples, split)
    return self._features[key]

  def train_features(self) -> dict[str, np.ndarray]:
    if not self.train_examples:
      raise ValueError(f'{self.name}: no training examples; set '
                       'config.data.train_file or config.data.train_split, '
                       'or use config.eval_only.')
    return self._cached('\0train', self.train_examples, None)

  def eval_features(self) -> dict[str, dict[str, np.ndarray]]:
    return {s: self._cached(s, e, s) for s, e in self.eval_examples.items()}

  def eval_splits(self) -> tuple[str, ...]:
    return tuple(self.eval_examples)

  def length_axes(self) -> dict[str, int]:
    # Every [max_seq_length] feature is a token axis; tasks add the rest.
    L = int(self.data.max_seq_length)
    return {k: 0 for k, (shape, _) in self.feature_spec().items()
            if tuple(shape) == (L,)}

  def check_split(self, split: str) -> None:
    if split not in self.eval_examples:
      raise ValueError(f'{self.name}: unknown evaluation split {split!r}; the '
                       f'splits are {list(self.eval_examples)}.')

  @abc.abstractmethod
  def predict(self, params: Any, batch: dict[str, Array]) -> dict[str, Array]:
    """Deterministic outputs per example (logits, ...); jitted by the trainer."""

  @abc.abstractmethod
  def evaluate_split(self, split: str, outputs: dict[str, np.ndarray],
                     directory: str | None = None) -> dict[str, float]:
    """Metrics of SPLIT from the outputs of all its examples, in order.

    With DIRECTORY, also writes the split's prediction files there.
    """


def combine(sums: dict[str, Array], norms: dict[str, Array],
            loss_keys: tuple[str, ...]) -> tuple[Array, dict[str, Array]]:
  """(loss, metrics) from sums and normalizers."""
  metrics = {k: sums[k] / jnp.maximum(norms[k], 1.0) for k in sums}
  loss = sum(metrics[k] for k in loss_keys)
  metrics['loss'] = loss
  return loss, metrics
