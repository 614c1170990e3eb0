"""Evaluation: exact averages of task sums (pretraining), and whole-split
predictions -> task metrics (fine-tuning)."""

from __future__ import annotations

from typing import Any

import jax
from absl import logging
import numpy as np

from bert_jax.data import loader as loader_lib
from bert_jax.train import sharding


def evaluate_sums(eval_step, params, examples, config, mesh, base_rng
                  ) -> dict[str, float]:
  """Averages over held-out examples (or train.eval_batches batches of them)."""
  n = len(examples['input_ids'])
  dp = int(np.lcm(sharding.data_parallel_size(mesh), jax.process_count()))
  batch = min(config.train.global_batch_size, (n // dp) * dp)
  if batch == 0:
    logging.warning('Only %d held-out examples, fewer than one batch of %d: '
                    'no evaluation. Raise data.eval_fraction.', n, dp)
    return {}
  it = loader_lib.make_loader(
      examples, global_batch_size=batch, seed=0, shuffle=False, num_epochs=1,
      process_index=jax.process_index(), process_count=jax.process_count())
  sums, norms = None, None
  for i, host_batch in enumerate(it):
    if config.train.eval_batches and i >= config.train.eval_batches:
      break
    s, z = eval_step(params, sharding.shard_batch(host_batch, mesh),
                     jax.random.fold_in(base_rng, i))
    s, z = jax.device_get((s, z))
    sums = s if sums is None else jax.tree.map(np.add, sums, s)
    norms = z if norms is None else jax.tree.map(np.add, norms, z)
  return {k: float(sums[k] / max(norms[k], 1.0)) for k in sums}


def to_host(tree: Any) -> Any:
  """Global (possibly sharded, multi-process) arrays -> numpy on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return multihost_utils.process_allgather(tree, tiled=True)


def predict_split(predict_fn, params, features: dict[str, np.ndarray],
                  batch_size: int, mesh, max_batches: int = 0
                  ) -> dict[str, np.ndarray]:
  """Runs predict over every row of FEATURES in order; returns host outputs.

  The last batch is filled up with copies of row 0 (fixed shapes: one
  compile), and those rows are dropped from the outputs.
  """
  n = len(next(iter(features.values())))
  pc, pi = jax.process_count(), jax.process_index()
  outputs: list[dict[str, np.ndarray]] = []
  for b, start in enumerate(range(0, n, batch_size)):
    if max_batches and b >= max_batches:
      break
    idx = np.arange(start, start + batch_size)
    real = idx < n
    idx = np.where(real, idx, 0)
    local = slice(pi * batch_size // pc, (pi + 1) * batch_size // pc)
    host = {k: v[idx][local] for k, v in features.items()}
    out = to_host(predict_fn(params, sharding.shard_batch(host, mesh)))
    outputs.append({k: np.asarray(v)[real] for k, v in out.items()})
  if not outputs:
    return {}
  return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}


def evaluate_task(task, predict_fn, params, config, mesh
                  ) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
  """{split: metrics} and {split: outputs} over every evaluation split."""
  metrics, outputs = {}, {}
  for split, feats in task.eval_features().items():
    # Whole splits always: F1 or MCC over part of a split is not the metric.
    out = predict_split(predict_fn, params, feats,
                        config.train.global_batch_size, mesh)
    outputs[split] = out
    metrics[split] = {k: float(v) for k, v in task.metrics(split, out).items()}
  return metrics, outputs
