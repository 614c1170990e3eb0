"""Running a jitted function over every row of an evaluation split, in order.

Batches have one fixed shape (one compile); the last one is filled up and the
filling never counts: ``sums_over`` fills with all-zero rows, which tasks
weigh 0 (no attended token, so nothing is masked or scored), and
``predict_over`` fills with copies of row 0 and drops their outputs. Every
process takes part in every batch and gets the whole outputs back.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.experimental import multihost_utils
import numpy as np

from bert_jax.train import sharding


def to_host(tree: Any) -> Any:
  """Global (possibly sharded, multi-process) arrays -> numpy on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def _batches(features: dict[str, np.ndarray], batch_size: int,
             max_batches: int, fill: str):
  """(local host batch, real-row mask [batch_size]) over FEATURES in order."""
  n = len(next(iter(features.values())))
  pc, pi = jax.process_count(), jax.process_index()
  local = slice(pi * batch_size // pc, (pi + 1) * batch_size // pc)
  for b, start in enumerate(range(0, n, batch_size)):
    if max_batches and b >= max_batches:
      return
    idx = np.arange(start, start + batch_size)
    real = idx < n
    idx = np.where(real, idx, 0)
    host = {}
    for k, v in features.items():
      rows = np.asarray(v[idx])
      if fill == 'zeros':
        rows = np.where(real.reshape((-1,) + (1,) * (rows.ndim - 1)), rows,
                        np.zeros_like(rows))
      host[k] = rows[local]
    yield host, real


def eval_batch_size(requested: int, mesh) -> int:
  """REQUESTED rounded up to a multiple of the data-parallel size and the
  process count, so every batch shards evenly."""
  dp = int(np.lcm(sharding.data_parallel_size(mesh), jax.process_count()))
  return max(-(-requested // dp) * dp, dp)


def sums_over(eval_step: Callable[..., Any], params: Any,
              features: dict[str, np.ndarray], batch_size: int, mesh,
              base_rng: jax.Array, max_batches: int = 0) -> dict[str, float]:
  """Exact averages of the task's sums over every row (or MAX_BATCHES
  batches) of FEATURES: {metric: sum / normalizer}."""
  sums = norms = None
  for i, (host, _) in enumerate(_batches(features, batch_size, max_batches,
                                         'zeros')):
    s, z = jax.device_get(eval_step(params, sharding.shard_batch(host, mesh),
                                    jax.random.fold_in(base_rng, i)))
    sums = s if sums is None else jax.tree.map(np.add, sums, s)
    norms = z if norms is None else jax.tree.map(np.add, norms, z)
  if sums is None:
    return {}
  return {k: float(sums[k] / max(norms[k], 1.0)) for k in sums}


def predict_over(predict_fn: Callable[..., Any], params: Any,
                 features: dict[str, np.ndarray], batch_size: int, mesh,
                 max_batches: int = 0) -> dict[str, np.ndarray]:
  """PREDICT_FN's outputs for every row of FEATURES, in order (host numpy)."""
  outputs: list[dict[str, np.ndarray]] = []
  for host, real in _batches(features, batch_size, max_batches, 'row0'):
    out = to_host(predict_fn(params, sharding.shard_batch(host, mesh)))
    outputs.append({k: np.asarray(v)[real] for k, v in out.items()})
  if not outputs:
    return {}
  return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
