"""SIGTERM handling: the loop saves a checkpoint and stops cleanly."""

from __future__ import annotations

import signal

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np


class Preempted:
  """Set by SIGTERM while installed (a context manager)."""

  def __init__(self):
    self.flag = False
    self._previous = None

  def __enter__(self) -> 'Preempted':
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread (e.g. some test runners).
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint and stopping.')
    self.flag = True

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def any_process(self) -> bool:
    """Whether any process was told to stop (a collective: all must call)."""
    if jax.process_count() == 1:
      return self.flag
    return bool(np.any(multihost_utils.process_allgather(np.asarray(self.flag))))
