"""The train step's program for each length bucket, and the prediction
programs, compiled ahead in threads.

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
the batches, so the numbers are the jitted step's. The prediction programs of
a fine-tuning task (``task.predict`` at each width its evaluation splits'
batches are cut to: ``evaluation.predict_widths``) are queued after the
train step's on the same threads, so the first evaluation does not stall on
compiles either.
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
from bert_jax.train import evaluation
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


def signature(batch: Mapping[str, Any]) -> tuple:
  """What picks a batch's program: its names, shapes and dtypes."""
  return tuple(sorted((k, tuple(v.shape), str(v.dtype))
                      for k, v in batch.items()))


class Compiler:
  """The threads that compile programs ahead, in the order they are asked for.

  Shared by the train step's and the prediction programs, so that at most
  WORKERS compiles run at once and the train step's come first.
  """

  def __init__(self, mesh: Any, rules: Any, workers: int = 2):
    self.mesh, self.rules = mesh, rules
    self._pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=max(int(workers), 1), thread_name_prefix='precompile')
    self._lock = threading.Lock()  # Lowering traces Python: one at a time.

  def submit(self, jitted: Callable[..., Any], *args: Any
             ) -> concurrent.futures.Future:
    """``jitted.lower(*ARGS).compile()`` in the background."""
    return self._pool.submit(self._compile, jitted, args)

  def _compile(self, jitted, args) -> Any:
    with self._lock, jax.set_mesh(self.mesh), nn.logical_axis_rules(
        self.rules):
      lowered = jitted.lower(*args)
    return lowered.compile()  # Outside the lock: compiles run side by side.

  def close(self) -> None:
    """Stops compiles not yet started; waits for running ones."""
    self._pool.shutdown(wait=True, cancel_futures=True)


class AheadPrograms:
  """Calls a jitted function through programs compiled ahead, per batch shape.

  ``programs(*args)`` runs the program compiled for the signature of
  ``args[batch_arg]`` once it is ready (waiting for it if its compile is
  still running) and falls back to the jitted function for a batch shape
  that was not compiled ahead.
  """

  def __init__(self, jitted: Callable[..., Any], args: tuple[Any, ...],
               batches: Iterable[Mapping[str, Any]], compiler: Compiler,
               batch_arg: int = 1):
    """Starts compiling JITTED at ARGS, with each of BATCHES (abstract) as
    argument BATCH_ARG, in the background on COMPILER."""
    self._jitted, self._batch_arg = jitted, batch_arg
    self._compiler = compiler
    self._futures: dict[tuple, concurrent.futures.Future] = {}
    args = list(args)
    for batch in batches:
      key = signature(batch)
      if key not in self._futures:
        args[batch_arg] = batch
        self._futures[key] = compiler.submit(jitted, *args)

  def __len__(self) -> int:
    return len(self._futures)

  def __call__(self, *args: Any) -> Any:
    future = self._futures.get(signature(args[self._batch_arg]))
    if future is None or future.cancelled():  # Not compiled ahead, or closed.
      return self._jitted(*args)
    return future.result()(*args)

  def close(self) -> None:
    self._compiler.close()


def batch_specs(host_features: Mapping[str, np.ndarray], global_batch_size: int,
                widths: Iterable[int | None], axes: Mapping[str, int],
                batch_sharding: Any) -> list[dict[str, jax.ShapeDtypeStruct]]:
  """Abstract global batches of HOST_FEATURES cut to each of WIDTHS (None:
  uncut), as ``length_buckets.trim`` cuts them."""
  out = []
  for w in widths:
    first = {k: np.asarray(v[:1]) for k, v in host_features.items()}
    cut = first if w is None else length_buckets.trim(first, w, axes)
    out.append({k: jax.ShapeDtypeStruct((global_batch_size,) + v.shape[1:],
                                        v.dtype, sharding=batch_sharding)
                for k, v in cut.items()})
  return out


class BucketPrograms(AheadPrograms):
  """The train step ``(state, batch, rng)`` compiled ahead for each width."""

  def __init__(self, jitted: Callable[..., Any], state: Any, rng: Any,
               host_features: Mapping[str, np.ndarray], axes: Mapping[str, int],
               global_batch_size: int, widths: Iterable[int], mesh: Any,
               rules: Any, workers: int = 2,
               compiler: Compiler | None = None):
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
      compiler: Threads to share with other programs (default: new ones).
    """
    self.compiler = compiler or Compiler(mesh, rules, workers)
    self._widths = tuple(int(w) for w in widths)
    specs = batch_specs(host_features, global_batch_size, self._widths, axes,
                        sharding.batch_sharding(mesh))
    super().__init__(jitted, (abstract(state), None, abstract(rng)), specs,
                     self.compiler, batch_arg=1)

  @property
  def widths(self) -> tuple[int, ...]:
    return self._widths


def prediction_programs(predict: Callable[..., Any], params: Any,
                        eval_features: Mapping[str, Mapping[str, np.ndarray]],
                        global_batch_size: int, buckets: Any,
                        axes: Mapping[str, int], compiler: Compiler
                        ) -> tuple[AheadPrograms, list[int | None]]:
  """``predict(params, batch)`` compiled ahead for every batch shape the
  evaluation of EVAL_FEATURES ({split: features}) will meet, and the widths.
  """
  specs, widths = [], []
  batch_sh = sharding.batch_sharding(compiler.mesh)
  for feats in eval_features.values():
    ws = evaluation.predict_widths(feats, global_batch_size, buckets, axes)
    specs += batch_specs(feats, global_batch_size, ws, axes, batch_sh)
    widths += [w for w in ws if w not in widths]
  return AheadPrograms(predict, (abstract(params), None), specs, compiler,
                       batch_arg=1), widths
