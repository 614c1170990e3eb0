"""The two kinds of evaluation a run may do, chosen once at setup from the
task's ``eval_kind``:

* ``SumsEvaluator`` ('sums'): exact averages of the training metrics over
  held-out examples (pretraining).
* ``PredictionEvaluator`` ('predictions'): whole-split predictions -> the
  task's metrics and prediction files; keeps the best checkpoint by
  ``train.best_metric`` (fine-tuning).

Both are called as ``evaluator(step, params, final)`` and return the metrics;
``wait()`` (or ``close()``) blocks until anything still being written (the
best checkpoint) is on disk. What they must remember across a restart (the
best score and its step) goes into the checkpoint's metadata: ``metadata()``
when saving, ``restore(...)`` when resuming, so a resumed run picks the same
best checkpoint as an uninterrupted one.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from bert_jax.train import best_writer
from bert_jax.train import evaluation
from bert_jax.train import metrics_writer
from bert_jax.train import pause_points

PREDICTIONS = 'predictions'
BEST = 'best'


def _report(writer, step: int, split: str, m: dict[str, float]) -> None:
  writer.write(step, 'eval', {'eval_split': split, **m})
  metrics_writer.log_line(f'eval step {step} [{split}]: ' + ', '.join(
      f'{k} {v:.4f}' for k, v in sorted(m.items())))


class SumsEvaluator:
  """Averages of the task's sums over each evaluation split."""

  def __init__(self, ctx: Any):
    self.ctx = ctx
    self.enabled = bool(ctx.task.eval_splits())

  def metadata(self) -> dict[str, Any]:
    return {}  # Nothing to remember.

  def restore(self, metadata: dict[str, Any]) -> None:
    del metadata

  def __call__(self, step: int, params: Any, final: bool) -> dict[str, Any]:
    del final
    c, out = self.ctx, {}
    batch = evaluation.eval_batch_size(c.config.train.global_batch_size, c.mesh)
    for split, feats in c.task.eval_features().items():
      m = evaluation.sums_over(c.eval_step, params, feats, batch, c.mesh,
                               c.eval_rng, c.config.train.get('eval_batches', 0))
      _report(c.writer, step, split, m)
      pause_points.pause('eval', step)  # A kill mid-evaluation (tests).
      # The usual single held-out split reports plain metric names.
      out.update(m if split == 'eval' else {f'{split}/{k}': v
                                             for k, v in m.items()})
    return out

  def wait(self) -> None:
    pass

  close = wait


def parse_best_metric(spec: str, task: Any) -> list[tuple[str, str]]:
  """``train.best_metric`` -> [(split, metric)], whose mean picks the best.

  '' = the task's main metric on its first split; otherwise comma-separated
  ``split:metric`` (or ``metric``, on the first split), e.g.
  ``validation_matched:accuracy,validation_mismatched:accuracy``.
  """
  splits = task.eval_splits()
  if not splits:
    return []
  out = []
  for part in filter(None, (p.strip() for p in (spec or '').split(','))):
    split, _, metric = part.rpartition(':')
    split = split or splits[0]
    if split not in splits:
      raise ValueError(f'train.best_metric={spec!r}: no evaluation split '
                       f'{split!r}; the splits are {list(splits)}.')
    out.append((split, metric))
  return out or [(splits[0], task.main_metric)]


class PredictionEvaluator:
  """Whole-split predictions, metrics, prediction files, best checkpoint."""

  def __init__(self, ctx: Any):
    self.ctx = ctx
    task, t = ctx.task, ctx.config.train
    self.enabled = bool(task.eval_splits())
    self.select = parse_best_metric(t.get('best_metric', ''), task)
    self.mode = t.get('best_metric_mode', '') or task.main_metric_mode
    if self.mode not in ('max', 'min'):
      raise ValueError(f"train.best_metric_mode={self.mode!r}; choose 'max', "
                       "'min' or '' (the task's).")
    # The key of the best score in eval_results.json.
    self.name = t.get('best_metric', '') or task.main_metric
    self.best: float | None = None
    self.best_step: int | None = None
    self.lengths_seen: set[int] = set()  # Token lengths predict compiled for.
    self.best_writer = None
    if not ctx.config.get('eval_only', False):
      self.best_writer = best_writer.BestWriter(
          os.path.join(ctx.workdir, BEST), ctx.model_config, ctx.tokenizer,
          background=ctx.config.ckpt.get('async_save', True))

  def metadata(self) -> dict[str, Any]:
    """The best score so far, for the checkpoint (JSON floats round-trip)."""
    return {'best_score': self.best, 'best_step': self.best_step}

  def restore(self, metadata: dict[str, Any]) -> None:
    """The best score of the checkpoint resumed from (none in old ones)."""
    self.best = metadata.get('best_score')
    self.best_step = metadata.get('best_step')

  def _score(self, by_split: dict[str, dict[str, float]]) -> float | None:
    values = []
    for split, metric in self.select:
      m = by_split.get(split, {})
      if not m:
        return None  # No labels (a GLUE test split): nothing to select on.
      if metric not in m:
        raise ValueError(f'train.best_metric: split {split!r} has no metric '
                         f'{metric!r}; it has {sorted(m)}.')
      values.append(m[metric])
    return float(np.mean(values)) if values else None

  def __call__(self, step: int, params: Any, final: bool) -> dict[str, Any]:
    del final
    c = self.ctx
    writes = jax.process_index() == 0
    pred_dir = os.path.join(c.workdir, PREDICTIONS)
    by_split = {}
    for split, feats in c.task.eval_features().items():
      # Whole splits always: F1 or MCC over part of a split is not the metric.
      out = evaluation.predict_over(
          c.predict, params, feats, c.config.train.global_batch_size, c.mesh,
          buckets=c.length_buckets, length_axes=c.task.length_axes(),
          lengths_seen=self.lengths_seen)
      m = c.task.evaluate_split(split, out, pred_dir if writes else None)
      by_split[split] = {k: float(v) for k, v in m.items()}
      _report(c.writer, step, split, by_split[split])
      pause_points.pause('eval', step)  # A kill mid-evaluation (tests).
    score = self._score(by_split)
    better = score is not None and (self.best is None or (
        score > self.best if self.mode == 'max' else score < self.best))
    if better:
      self.best, self.best_step = score, step
      if self.best_writer is not None:
        self.best_writer.save(params, c.task.metadata(),
                              os.path.join(c.workdir, PREDICTIONS), step=step)
    return {'splits': by_split, 'best': {self.name: self.best,
                                         'step': self.best_step}}

  def wait(self) -> None:
    """Blocks until the best checkpoint being written (if any) is on disk."""
    if self.best_writer is not None:
      self.best_writer.wait()

  close = wait


EVALUATORS = {'sums': SumsEvaluator, 'predictions': PredictionEvaluator}


def make_evaluator(ctx: Any):
  """The evaluator of the task's ``eval_kind``."""
  kind = ctx.task.eval_kind
  if kind not in EVALUATORS:
    raise ValueError(f'{ctx.task.name}: eval_kind={kind!r}; one of '
                     f'{tuple(EVALUATORS)}.')
  return EVALUATORS[kind](ctx)
