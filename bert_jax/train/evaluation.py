"""Running a jitted function over every row of an evaluation split, in order.

Batches have one fixed number of rows; the last one is filled up and the
filling never counts: ``sums_over`` fills with all-zero rows, which tasks
weigh 0 (no attended token, so nothing is masked or scored), and
``predict_over`` fills with copies of the batch's first row and drops their
outputs. Every process takes part in every batch and gets the whole outputs
back.

With length buckets (``bert_jax.data.length_buckets``), ``predict_over`` runs
the rows shortest first, cuts each batch's token axes to the bucket of its
longest row (one compile per bucket) and pads the token axes of the outputs
back to the full length, then puts the rows back in their original order: the
outputs are those of the unsorted, unbucketed run, up to float rounding.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
from jax.experimental import multihost_utils
import numpy as np

from bert_jax.data import length_buckets as buckets_lib
from bert_jax.train import sharding


def to_host(tree: Any) -> Any:
  """Global (possibly sharded, multi-process) arrays -> numpy on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def _batches(features: dict[str, np.ndarray], batch_size: int,
             max_batches: int, fill: str, order: np.ndarray | None = None,
             trimmer: buckets_lib.Trimmer | None = None):
  """(local host batch, real-row mask [batch_size]) over FEATURES.

  Rows go in ORDER (a permutation; None = as stored); a TRIMMER cuts each
  batch to the bucket of its global rows, so every process agrees.
  """
  n = len(next(iter(features.values())))
  order = np.arange(n) if order is None else np.asarray(order)
  pc, pi = jax.process_count(), jax.process_index()
  local = slice(pi * batch_size // pc, (pi + 1) * batch_size // pc)
  for b, start in enumerate(range(0, n, batch_size)):
    if max_batches and b >= max_batches:
      return
    pos = np.arange(start, start + batch_size)
    real = pos < n
    # Filling rows copy the batch's first row: they never need a longer bucket.
    idx = order[np.where(real, pos, start)]
    host = {}
    for k, v in features.items():
      rows = np.asarray(v[idx])
      if fill == 'zeros':
        rows = np.where(real.reshape((-1,) + (1,) * (rows.ndim - 1)), rows,
                        np.zeros_like(rows))
      host[k] = rows[local]
    if trimmer is not None:
      host = trimmer(host, idx[real])
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


def predict_widths(features: Mapping[str, np.ndarray], batch_size: int,
                   buckets: Sequence[int] | None,
                   length_axes: Mapping[str, int] | None
                   ) -> list[int | None]:
  """The token widths ``predict_over`` cuts FEATURES' batches to, first met
  first; ``[None]`` when it does not cut them (one full-length program)."""
  axes = dict(length_axes or {})
  if not (buckets and axes and 'attention_mask' in features):
    return [None]
  # The rows shortest first, as predict_over runs them.
  lengths = np.sort(buckets_lib.row_lengths(features['attention_mask']))
  seen: dict[int, None] = {}
  for start in range(0, len(lengths), batch_size):
    longest = int(lengths[start:start + batch_size].max())
    seen.setdefault(buckets_lib.bucket_of(longest, tuple(buckets)), None)
  return list(seen)


def predict_over(predict_fn: Callable[..., Any], params: Any,
                 features: dict[str, np.ndarray], batch_size: int, mesh,
                 max_batches: int = 0, buckets: Sequence[int] | None = None,
                 length_axes: Mapping[str, int] | None = None,
                 lengths_seen: set[int] | None = None
                 ) -> dict[str, np.ndarray]:
  """PREDICT_FN's outputs for every row of FEATURES, in order (host numpy).

  Args:
    predict_fn: The jitted ``task.predict(params, batch)``.
    params: The model's params.
    features: A split's features {name: [N, ...]}.
    batch_size: Rows per batch (global).
    mesh: The device mesh.
    max_batches: Only the first this many batches (0 = all); these are the
      first rows as stored, so no sorting then.
    buckets: Length buckets (``length_buckets.parse``); None = every batch at
      full length, in stored order.
    length_axes: The task's ``length_axes()``: which features and outputs
      to cut and pad back.
    lengths_seen: If given, the token lengths of the batches are added to it
      (one compile of PREDICT_FN each).
  """
  axes = dict(length_axes or {})
  order = trimmer = None
  if buckets and axes and 'attention_mask' in features and not max_batches:
    lengths = buckets_lib.row_lengths(features['attention_mask'])
    # Stable: rows of equal length keep their order, so ties are reproducible.
    order = np.argsort(lengths, kind='stable')
    trimmer = buckets_lib.Trimmer(buckets, lengths, axes)
  outputs: list[dict[str, np.ndarray]] = []
  for host, real in _batches(features, batch_size, max_batches, 'row0', order,
                             trimmer):
    if lengths_seen is not None and 'attention_mask' in host:
      lengths_seen.add(int(host['attention_mask'].shape[1]))
    out = to_host(predict_fn(params, sharding.shard_batch(host, mesh)))
    outputs.append({k: np.asarray(v)[real] for k, v in out.items()})
  if not outputs:
    return {}
  full = max(buckets) if trimmer is not None else 0
  result = {}
  for k in outputs[0]:
    parts = [o[k] for o in outputs]
    if trimmer is not None and k in axes:
      parts = [buckets_lib.pad_to(p, full - axes[k]) for p in parts]
    result[k] = np.concatenate(parts)
    if order is not None:
      unsorted = np.empty_like(result[k])
      unsorted[order] = result[k]
      result[k] = unsorted
  return result
