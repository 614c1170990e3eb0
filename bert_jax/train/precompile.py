"""The train step's program for each length bucket, compiled ahead in threads.

With length buckets (``bert_jax.data.length_buckets``) the train step is
compiled once per bucket. Compiled when the loop first meets a batch of that
length, each compile stalls training for its whole duration (XLA:CPU compiles
with about one core: 6-11 s each for MiniLM-L6 on a nearly quiet 2-core
CPU, several times that under load, against steps of well under a second). ``BucketPrograms`` lowers and compiles every
bucket the run will use in background threads, in the order the loop meets
them, so the loop waits only where it reaches a bucket whose compile has not
finished, and the compiles overlap the steps and each other.

The programs are ``jax.jit(...).lower(...).compile()`` of the very jitted
function the loop would call, at the exact global shapes and shardings of
the batches, so the numbers are the jitted step's.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from bert_jax.data import length_buckets
from bert_jax.train import sharding


def abstract(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a tree of jax.Arrays."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
      tree)


def widths_in_order(order: Any, trimmer: Any, start: int, stop: int,
                    buckets: Iterable[int], lengths_N: np.ndarray) -> list[int]:
  """The bucket widths batches START..STOP-1 are cut to, first use first.

  With a known batch order (``LengthGroupedBatches``) these are exact;
  without one (a plain shuffle) every bucket up to the one of the longest row
  may come up, and they are listed shortest first.
  """
  if order is not None and trimmer is not None:
    seen: dict[int, None] = {}
    for t in range(start, stop):
      seen.setdefault(trimmer.width(order[t]), None)
    return list(seen)
  longest = length_buckets.bucket_of(int(np.max(lengths_N, initial=0)),
                                     tuple(buckets))
  return [b for b in buckets if b <= longest]


class BucketPrograms:
  """Calls a jitted train step through programs compiled ahead, per width.

  ``programs(state, batch, rng)`` runs the compiled program for the batch's
  token length once it is ready (waiting for it if its compile is still
  running) and falls back to the jitted function for a length that was not
  compiled ahead.
  """

  def __init__(self, jitted: Callable[..., Any], state: Any, rng: Any,
               host_features: Mapping[str, np.ndarray], axes: Mapping[str, int],
               global_batch_size: int, widths: Iterable[int], mesh: Any,
               rules: Any, workers: int = 2):
    """Starts compiling, in the background, one program per width.

    Args:
      jitted: The jitted ``train_step(state, batch, rng)``.
      state: The train state (only its shapes and shardings are used).
      rng: The step's base RNG key (shape and sharding).
      host_features: Training features ``{name: [N, ...]}``: the dtypes and
        the trailing shapes of a batch.
      axes: ``Task.length_axes()``: which features are cut to the width.
      global_batch_size: Rows of a global batch.
      widths: Token lengths to compile for, the first needed first.
      mesh: The mesh the batches are sharded over.
      rules: The logical axis rules in force (thread-local in flax, so
        re-entered in the compiling threads).
      workers: Compiles run at once (XLA:CPU compiles with about one core).
    """
    self._jitted = jitted
    self._mesh, self._rules = mesh, rules
    self._state, self._rng = abstract(state), abstract(rng)
    batch_sh = sharding.batch_sharding(mesh)
    self._batch_of = {}
    for w in widths:
      cut = length_buckets.trim({k: np.asarray(v[:1]) for k, v in
                                 host_features.items()}, w, axes)
      self._batch_of[int(w)] = {
          k: jax.ShapeDtypeStruct((global_batch_size,) + v.shape[1:], v.dtype,
                                  sharding=batch_sh) for k, v in cut.items()}
    self._pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(int(workers), 1), thread_name_prefix='precompile')
    self._lock = threading.Lock()  # Lowering traces Python: one at a time.
    self._futures = {w: self._pool.submit(self._compile, w)
                     for w in self._batch_of}

  def _compile(self, width: int) -> Any:
    with self._lock, jax.set_mesh(self._mesh), nn.logical_axis_rules(
        self._rules):
      lowered = self._jitted.lower(self._state, self._batch_of[width],
                                   self._rng)
    return lowered.compile()  # Outside the lock: compiles run side by side.

  @property
  def widths(self) -> tuple[int, ...]:
    return tuple(self._futures)

  def __call__(self, state: Any, batch: Mapping[str, Any], rng: Any) -> Any:
    width = int(batch['attention_mask'].shape[1])
    future = self._futures.get(width)
    if future is None:
      return self._jitted(state, batch, rng)
    return future.result()(state, batch, rng)

  def close(self) -> None:
    """Stops compiles not yet started; waits for running ones."""
    self._pool.shutdown(wait=True, cancel_futures=True)
