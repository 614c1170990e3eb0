"""Several processes, one input, one output: who encodes which shard.

The input is cut into shards of ``shard_size`` texts, fixed by the input and
the arguments (not by the number of processes), and dealt out round-robin:
process p of P encodes shards p, p + P, p + 2P, ... Every process reads the
whole input and skips the other processes' texts (reading is cheap next to
the model), so no process needs the input's length in advance, and the shards
that an interrupted run completed are skipped the same way. Each process runs
the model on its own local devices; the only cross-process steps are the
points the processes meet at (``until``): the checkpoint loaded, the output
folder ready, every shard written, and the output's ``meta.json`` written (or
the shards joined into one ``.npy``) by process 0.

A process whose part fails still goes to the next meeting point, marked
failed, before its error goes on; the others stop there with ``PeerFailed``
naming it, instead of waiting for it in a barrier until the coordination
service's heartbeat timeout (100 s) aborts them. A process that dies (kill -9,
a lost machine) breaks the meeting's collective; the others stop with
``PeerLost``. Either way the complete shards stay for a rerun.

The processes must see the same output path (one host, or a shared disk).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np

# Environment variables that mean "one of several processes" (as launch.py).
_MULTIPROCESS_ENV = ('MEGASCALE_COORDINATOR_ADDRESS', 'OMPI_COMM_WORLD_SIZE',
                     'JAX_COORDINATOR_ADDRESS')


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None) -> None:
  """``jax.distributed.initialize`` when asked or a cluster is detected."""
  if jax.distributed.is_initialized() or not (coordinator_address or any(os.environ.get(k)
                                     for k in _MULTIPROCESS_ENV) or
          os.environ.get('SLURM_NTASKS', '1') not in ('', '1')):
    return
  if os.environ.get('JAX_PLATFORMS', '') == 'cpu':
    # CPU-only multi-process (tests, clusters without accelerators).
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes,
                             process_id=process_id)


# EX_TEMPFAIL, as the trainer's launcher: run the command again, in every
# process, once the cause is fixed.
EXIT_PEER_FAILED = 75


class PeerError(RuntimeError):
  """Another process of the run failed or was lost, so this one stopped."""


class PeerFailed(PeerError):
  """Another process arrived at a meeting point with its part failed."""


class PeerLost(PeerError):
  """A meeting point's collective failed: another process is gone."""


def agree(name: str, failed: bool = False) -> list[int]:
  """Waits until every process gets to NAME; returns the ones that FAILED.

  One all-gather of (NAME's hash, FAILED) over the processes: a barrier that
  also carries each process's state. Nothing to wait for with one process.
  Raises PeerLost when the collective fails (a process died).
  """
  count, index = jax.process_count(), jax.process_index()
  if count == 1:
    return [index] if failed else []
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  mine = np.array([zlib.crc32(name.encode()), int(failed)], np.uint32)
  try:
    every = np.asarray(multihost_utils.process_allgather(mine))
  except jax.errors.JaxRuntimeError as e:
    cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise PeerLost(
        f'process {index} of {count} stopped at "{name}": another process '
        f'was lost before getting there ({cause}).') from e
  at = {int(h) for h in every[:, 0]}
  if at != {int(mine[0])}:
    raise RuntimeError(f'process {index} of {count} is at "{name}" but '
                       'another process is at a different point (a bug: '
                       'every process must meet at the same points in the '
                       'same order).')
  return [int(i) for i in np.flatnonzero(every[:, 1])]


@contextlib.contextmanager
def until(name: str) -> Iterator[None]:
  """Runs a part every process does, then meets the others at NAME.

  If the part raises, this process still goes to NAME (marked failed) and
  then re-raises its own error; the others stop at NAME with PeerFailed
  naming it. With one process it only runs the part.
  """
  try:
    yield
  except Exception:
    if jax.process_count() > 1:
      try:
        agree(name, failed=True)
      except PeerError:
        pass  # Our own error is the one to report.
    raise
  failed = agree(name)
  if failed:
    who = ', '.join(map(str, failed))
    raise PeerFailed(
        f'process {jax.process_index()} of {jax.process_count()} stopped at '
        f'"{name}": process{"es" if len(failed) > 1 else ""} {who} failed '
        'before getting there (its own output says why).')


class Slice:
  """This process's part of an input: the shards it owns and has not done.

  ``texts`` yields the texts of those shards, in input order, and counts every
  text of the input on the way (``num_texts``, once read to the end);
  ``indices`` are those shards' numbers, for the writer. Every shard is
  ``shard_size`` texts but the input's last, so the two stay in step.
  """

  def __init__(self, shard_size: int, process_index: int, process_count: int,
               done: Iterable[int] = ()):
    self.shard_size = shard_size
    done = frozenset(done)
    self.todo: Callable[[int], bool] = (
        lambda i: i % process_count == process_index and i not in done)
    self.num_texts = 0

  def indices(self) -> Iterator[int]:
    return (i for i in itertools.count() if self.todo(i))

  def texts(self, texts: Iterable[Any]) -> Iterator[Any]:
    it = iter(texts)
    for shard in itertools.count():
      n = 0
      if self.todo(shard):
        for t in itertools.islice(it, self.shard_size):
          n += 1
          yield t
      else:
        n = sum(1 for _ in itertools.islice(it, self.shard_size))
      self.num_texts += n
      if n < self.shard_size:
        return
