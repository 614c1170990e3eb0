"""Several processes, one input, one output: who encodes which shard.

The input is cut into shards of ``shard_size`` texts, fixed by the input and
the arguments (not by the number of processes), and dealt out round-robin:
process p of P encodes shards p, p + P, p + 2P, ... Every process reads the
whole input and skips the other processes' texts (reading is cheap next to
the model), so no process needs the input's length in advance, and the shards
that an interrupted run completed are skipped the same way. Each process runs
the model on its own local devices; the only cross-process step is
``barrier``, around the writing of the output's ``meta.json`` (or the join of
the shards into one ``.npy``) by process 0.

The processes must see the same output path (one host, or a shared disk).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax

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


def barrier(name: str) -> None:
  """Waits until every process gets here (nothing to wait for with one)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


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
