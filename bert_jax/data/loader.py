"""The host loader: shuffle, shard per process, batch, prefetch, checkpoint.

Built on grain 0.2.18's dataset API (no TensorFlow):

    MapDataset.range(N).shuffle(seed).repeat(epochs).batch(G)  # indices [G]
      .map(GatherProcessSlice)     # this process's rows, one vectorised gather
      .to_iter_dataset()  -> ThreadPrefetchIterDataset (or mp_prefetch)

The stream of global batches is defined once, for the whole job: global batch t
is the same examples however many processes read it, and process p takes the
contiguous rows `[p * G/P, (p+1) * G/P)` of it, which is the order in which
`jax.make_array_from_process_local_data` lays process data along the batch.
So processes read disjoint examples, a mesh change never changes what the
model sees, and a saved state may even be restored with another number of
processes through `get_state`/`set_state` (grain's orbax handler, though,
names its files by process index and count). Gathering a whole batch with one
fancy index per feature also avoids grain's per-record Python work (grain's
`DataLoader` + `IndexSampler` would read and stack records one by one, and
shard by contiguous blocks of records instead).

The iterator's state is small JSON (the index of the next batch plus a
fingerprint of the pipeline, checked on restore); `checkpoint_args` wraps it
for orbax through `grain.checkpoint.CheckpointSave` / `CheckpointRestore`,
which exist in grain 0.2.18 when orbax is installed (`grain.python`'s
`PyGrainCheckpointSave` / `PyGrainCheckpointRestore` are the same classes).
"""

import atexit
from collections.abc import Iterator, Mapping
import hashlib
import json
from typing import Any
import weakref

import grain
import numpy as np

_STATE_VERSION = 1
# Iterators still open. Their prefetch threads are closed at exit: a daemon
# thread left running into interpreter shutdown aborts the process ("terminate
# called without an active exception").
_OPEN_ITERATORS = weakref.WeakSet()


@atexit.register
def _close_open_iterators() -> None:
  for iterator in list(_OPEN_ITERATORS):
    iterator.close()


class ArraySource(grain.sources.RandomAccessDataSource):
  """In-memory examples: record i is `{name: array[i]}` for each feature.

  Module level and picklable, so grain's worker processes can import it.
  """

  def __init__(self, features: Mapping[str, np.ndarray]):
    if not features:
      raise ValueError('features is empty; need at least one array')
    lengths = {k: len(v) for k, v in features.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(
          f'features differ in length (first dimension): {lengths}')
    self._features = {k: np.asarray(v) for k, v in sorted(features.items())}
    self._len = next(iter(lengths.values()))

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in self._features.items()}

  def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Many records at once, stacked: one gather per feature."""
    return {k: v[indices] for k, v in self._features.items()}

  def __repr__(self) -> str:
    # Goes into the loader's fingerprint, so it describes the data (names,
    # shapes, dtypes and a hash of the first and last examples), not the
    # object's address.
    digest = hashlib.sha1()
    for k, v in self._features.items():
      digest.update(k.encode())
      if self._len:
        digest.update(np.ascontiguousarray(v[[0, -1]]).tobytes())
    spec = ', '.join(f'{k}:{v.dtype}{list(v.shape)}'
                     for k, v in self._features.items())
    return f'ArraySource({spec}, sha1={digest.hexdigest()[:12]})'


class GatherProcessSlice(grain.transforms.Map):
  """Global batch of indices -> this process's rows of the examples.

  With a TRIMMER (`bert_jax.data.length_buckets.Trimmer`) the rows are cut to
  the length bucket of the whole global batch, so all processes agree.
  """

  def __init__(self, source: Any, start: int, stop: int, trimmer: Any = None):
    self._source, self._start, self._stop = source, start, stop
    self._trimmer = trimmer

  def map(self, indices_G: np.ndarray) -> dict[str, np.ndarray]:
    indices_G = np.asarray(indices_G)
    indices = indices_G[self._start:self._stop]
    if hasattr(self._source, 'take'):
      batch = self._source.take(indices)
    else:
      records = [self._source[int(i)] for i in indices]
      batch = {k: np.stack([r[k] for r in records]) for k in records[0]}
    return batch if self._trimmer is None else self._trimmer(batch, indices_G)


class LoaderIterator(Iterator):
  """Batches of one process, with a state that can be saved and restored.

  `get_state()` returns JSON bytes; `set_state()` accepts them (or the str or
  dict) and raises ValueError if they come from a different pipeline (other
  data, batch size, seed, ...). The number of processes may differ.
  """

  def __init__(self, iterator: grain.DatasetIterator, fingerprint: str):
    self._iterator = iterator
    self._fingerprint = fingerprint
    _OPEN_ITERATORS.add(self)

  def _open(self) -> grain.DatasetIterator:
    if self._iterator is None:
      raise ValueError('the loader iterator was closed')
    return self._iterator

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self._open())

  def get_state(self) -> bytes:
    return json.dumps({
        'version': _STATE_VERSION,
        'fingerprint': self._fingerprint,
        'grain': self._open().get_state(),
    }).encode()

  def set_state(self, state: bytes | str | Mapping[str, Any]) -> None:
    if isinstance(state, (bytes, str)):
      state = json.loads(state)
    if state.get('version') != _STATE_VERSION:
      raise ValueError(f'loader state version {state.get("version")!r} is '
                       f'not {_STATE_VERSION}')
    if state['fingerprint'] != self._fingerprint:
      raise ValueError(
          'loader state was saved by a different pipeline:\n'
          f'  saved: {state["fingerprint"]}\n  this:  {self._fingerprint}')
    self._open().set_state(state['grain'])

  def start_prefetch(self) -> None:
    """Starts filling the prefetch buffer now (orbax calls it on restore)."""
    if hasattr(self._open(), 'start_prefetch'):
      self._iterator.start_prefetch()

  def close(self) -> None:
    """Stops background threads or worker processes; idempotent."""
    iterator, self._iterator = self._iterator, None
    if iterator is not None:
      iterator.close()
    _OPEN_ITERATORS.discard(self)


def make_loader(features: Mapping[str, np.ndarray] | Any,
                *,
                global_batch_size: int,
                seed: int,
                shuffle: bool = True,
                num_epochs: int | None = None,
                process_index: int = 0,
                process_count: int = 1,
                worker_count: int = 0,
                drop_remainder: bool = True,
                prefetch: int = 2,
                trimmer: Any = None,
                batch_order: Any = None) -> LoaderIterator:
  """An iterator over this process's part of each global batch.

  Args:
    features: Examples, `{name: array [N, ...]}`, or any grain
      `RandomAccessDataSource` whose records are such dicts of one example
      (e.g. `bert_jax.data.pretrain.prepare.PreparedSource`).
    global_batch_size: G, examples per step over all processes.
    seed: Seed of the shuffle, in [0, 2**32).
    shuffle: Shuffle the examples, in a new order every epoch.
    num_epochs: Stop after this many passes; None repeats forever. Batches run
      on across epoch ends.
    process_index: This process's index (`jax.process_index()`).
    process_count: P, the number of processes (`jax.process_count()`).
    worker_count: Worker processes (0: threads in this process; the gather is
      cheap, so workers rarely pay). Workers need absl flags parsed (`app.run`,
      or `flags.FLAGS.mark_as_parsed()`).
    drop_remainder: Drop a last, smaller global batch (with `num_epochs`). If
      kept, its rows are still split in process order, so the last processes
      may get fewer rows (or none): keep it only on one process.
    prefetch: Batches prepared ahead (per worker if there are workers).
    trimmer: Optional `bert_jax.data.length_buckets.Trimmer`: each batch's
      token axes are cut to the length bucket of its global batch's longest
      row (shapes then vary by batch, one per bucket).
    batch_order: Optional `bert_jax.data.length_buckets.LengthGroupedBatches`
      (built with the same global batch size and seed): the global batches
      are its index arrays instead of a plain shuffle; `num_epochs`,
      `shuffle` and `drop_remainder` are then its to decide.

  Returns:
    A `LoaderIterator` yielding `{name: array [G / P, ...]}`.

  Raises:
    ValueError: On sizes that do not fit (named in the message).
  """
  if global_batch_size < 1:
    raise ValueError(f'global_batch_size must be >= 1, got {global_batch_size}')
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f'process_index={process_index} must be in [0, '
                     f'process_count={process_count})')
  if global_batch_size % process_count:
    raise ValueError(
        f'global_batch_size={global_batch_size} is not divisible by '
        f'process_count={process_count}; every process must get an equal part')
  if not 0 <= seed < 2**32:
    raise ValueError(f'seed must be in [0, 2**32) for grain, got {seed}')
  if num_epochs is not None and num_epochs < 1:
    raise ValueError(f'num_epochs must be >= 1 or None, got {num_epochs}')
  if worker_count < 0 or prefetch < 0:
    raise ValueError(f'worker_count ({worker_count}) and prefetch '
                     f'({prefetch}) must be >= 0')
  source = (ArraySource(features) if isinstance(features, Mapping)
            else features)
  if len(source) == 0:
    raise ValueError('the data source is empty')
  if num_epochs is not None and drop_remainder and (
      len(source) * num_epochs < global_batch_size):
    raise ValueError(
        f'{len(source)} examples x {num_epochs} epoch(s) make no full batch '
        f'of {global_batch_size}; lower global_batch_size or set '
        'drop_remainder=False')

  if batch_order is not None:
    if batch_order.G != global_batch_size:
      raise ValueError(f'batch_order has batches of {batch_order.G}, not '
                       f'global_batch_size={global_batch_size}')
    indices = grain.MapDataset.source(batch_order)
  else:
    indices = grain.MapDataset.range(len(source))
    if shuffle:
      indices = indices.shuffle(seed=seed)
    indices = indices.repeat(num_epochs).batch(
        global_batch_size, drop_remainder=drop_remainder)
  per_process = global_batch_size // process_count
  batches = indices.map(GatherProcessSlice(
      source, process_index * per_process, (process_index + 1) * per_process,
      trimmer))
  # Reading is a gather in memory: threads would only fight over the GIL.
  ds = batches.to_iter_dataset(
      grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
  if worker_count:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=worker_count, per_worker_buffer_size=max(prefetch, 1)))
  elif prefetch:
    ds = grain.experimental.ThreadPrefetchIterDataset(
        ds, prefetch_buffer_size=prefetch)
  # Not the process index or count: the batch stream does not depend on them.
  fingerprint = (f'{source!r} global_batch_size={global_batch_size} '
                 f'seed={seed} shuffle={shuffle} num_epochs={num_epochs} '
                 f'drop_remainder={drop_remainder} worker_count={worker_count}')
  # Absent otherwise: states saved before these options still restore.
  for extra in (batch_order, trimmer):
    if extra is not None:
      fingerprint += f' {extra!r}'
  return LoaderIterator(iter(ds), fingerprint)


def checkpoint_args(iterator: LoaderIterator, *, restore: bool = False) -> Any:
  """The orbax `CheckpointArgs` that save or restore a loader's position.

  Use it as one item of an `ocp.args.Composite`, e.g.
  `ocp.args.Composite(state=ocp.args.StandardSave(state),
  data=checkpoint_args(it))`; restoring sets the state of `iterator` in place.
  Each process writes and reads its own `process_<i>-of-<n>.json`.

  Args:
    iterator: The iterator from `make_loader`.
    restore: Restore arguments rather than save arguments.

  Returns:
    `grain.checkpoint.CheckpointSave(iterator)` or `CheckpointRestore`.
  """
  if not hasattr(grain.checkpoint, 'CheckpointSave'):
    # grain defines them only when orbax imports cleanly.
    raise ImportError('grain.checkpoint.CheckpointSave is missing: orbax-'
                      'checkpoint is not installed or failed to import')
  cls = (grain.checkpoint.CheckpointRestore if restore
         else grain.checkpoint.CheckpointSave)
  return cls(iterator)


def checkpoint_handler() -> Any:
  """The orbax handler of `checkpoint_args` items, to read one directly
  (``handler.restore(step_dir / 'data', args=checkpoint_args(it, restore=True))``)."""
  return grain.checkpoint.CheckpointHandler()
