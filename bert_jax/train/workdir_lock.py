"""One run per workdir: ``WORKDIR/run.lock`` names the host and PID holding it.

Two runs in one workdir would interleave checkpoints and metrics, and the
retention of one would delete the other's steps. So a launch on a workdir
whose run is alive refuses, naming that run's host and PID. A lock left by a
killed run (kill -9, OOM killer, a lost VM) is *stale* when its PID no longer
runs on this host (or runs a newer process that reused the PID); it is taken
over with a warning. A lock written on another host cannot be checked from
here: the launch refuses and says so; ``--config.train.force_lock=True``
takes it anyway.

With several processes only process 0 takes the lock (the workdir is shared)
and every process learns the outcome, so none trains alone.

On object storage (``gs://``) there is no flock and no ``O_EXCL``: the lock
is created with a generation precondition (``ifGenerationMatch=0``), which GCS
applies atomically, so of two launches racing for a free (or stale) lock
exactly one wins and the other refuses. The liveness check is the same (host
name + PID): a preempted TPU VM that comes back under its name sees its old
lock as stale and takes it over. On other URIs (``s3://``...) the create is a
check-then-write: best effort.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import socket
from typing import Iterator

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from bert_jax import storage

LOCK_NAME = 'run.lock'


class WorkdirLocked(RuntimeError):
  """The workdir is held by another run."""


@dataclasses.dataclass(frozen=True)
class Holder:
  """Who holds a workdir: what ``run.lock`` contains."""
  host: str
  pid: int
  started: str                  # UTC, ISO 8601; for people.
  proc_start: str | None = None  # /proc/<pid>/stat start time: tells PID reuse.

  @classmethod
  def me(cls) -> 'Holder':
    return cls(socket.gethostname(), os.getpid(),
               datetime.datetime.now(datetime.timezone.utc).isoformat(
                   timespec='seconds'), _proc_start(os.getpid()))

  def describe(self) -> str:
    return f'PID {self.pid} on host {self.host!r} (started {self.started})'


def _proc_start(pid: int) -> str | None:
  try:
    with open(f'/proc/{pid}/stat') as f:
      # Field 22, counted after the ')' that ends the command name.
      return f.read().rsplit(')', 1)[1].split()[19]
  except (OSError, IndexError):
    return None  # No /proc (macOS) or no such process.


def _alive(holder: Holder) -> bool:
  """Whether HOLDER's process still runs (HOLDER must be on this host)."""
  try:
    os.kill(holder.pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # It exists, run by another user.
  now = _proc_start(holder.pid)
  return holder.proc_start is None or now is None or now == holder.proc_start


def read(workdir: str) -> Holder | None:
  """The holder written in WORKDIR/run.lock; None if there is no lock.

  Raises:
    ValueError: the file is not a lock this module wrote.
  """
  path = os.path.join(workdir, LOCK_NAME)
  try:
    text = storage.read_text(path)
  except FileNotFoundError:
    return None
  try:
    return Holder(**json.loads(text))
  except (ValueError, TypeError) as e:
    raise ValueError(f'{path} is not a run lock ({e}): {text[:200]!r}') from e


@contextlib.contextmanager
def _exclusive(workdir: str) -> Iterator[None]:
  """Serialises the check-and-take of the lock between launchers."""
  if storage.is_uri(workdir):
    yield  # No flock on object storage: the precondition in acquire() decides.
    return
  fd = os.open(workdir, os.O_RDONLY)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
      # Some network file systems have no flock: O_EXCL below still keeps two
      # fresh launches apart; only two take-overs of one stale lock could race.
      pass
    yield
  finally:
    os.close(fd)  # Releases the flock.


def acquire(workdir: str, force: bool = False) -> Holder:
  """Takes WORKDIR/run.lock for this process; returns what it wrote.

  Raises:
    WorkdirLocked: a live run holds it, or one on another host (unless FORCE).
  """
  path = os.path.join(workdir, LOCK_NAME)
  me = Holder.me()
  with _exclusive(workdir):
    try:
      holder = read(workdir)
    except ValueError as e:
      logging.warning('Replacing an unreadable lock: %s', e)
      holder = None
      storage.remove(path, missing_ok=True)
    if holder is not None:
      _check_takeover(path, holder, me, force)
      storage.remove(path, missing_ok=True)
    try:
      storage.create_new(path, json.dumps(dataclasses.asdict(me)) + '\n')
    except FileExistsError:
      # Another launch took it between our read and our create.
      winner = read(workdir)
      raise WorkdirLocked(
          f'{workdir} was just locked by another launch'
          f'{" (" + winner.describe() + ")" if winner else ""}; lock: {path}.'
          ' Use another --workdir.') from None
  return me


def _check_takeover(path: str, holder: Holder, me: Holder, force: bool) -> None:
  """Returns if HOLDER's lock may be taken over; raises WorkdirLocked if not."""
  if force:
    logging.warning('train.force_lock: taking over %s from %s.', path,
                    holder.describe())
  elif holder.host != me.host:
    raise WorkdirLocked(
        f'{os.path.dirname(path)} is in use by {holder.describe()} (lock: '
        f'{path}). That is another host, so this one cannot tell whether that '
        'run is still alive. If it is not, relaunch with '
        '--config.train.force_lock=True (or delete the lock file); if it is, '
        'use another --workdir.')
  elif _alive(holder):
    raise WorkdirLocked(
        f'{os.path.dirname(path)} is in use by the run with {holder.describe()}'
        f' (lock: {path}). Wait for it to end, stop it (kill {holder.pid}), or '
        'use another --workdir.')
  else:
    logging.warning('Taking over the stale lock %s: %s is no longer running '
                    '(killed?).', path, holder.describe())


def release(workdir: str, me: Holder) -> None:
  """Removes WORKDIR/run.lock if it is still ME's (not taken over by force)."""
  try:
    if read(workdir) == me:
      storage.remove(os.path.join(workdir, LOCK_NAME))
  except (OSError, ValueError) as e:
    logging.warning('Could not release %s: %s', os.path.join(workdir, LOCK_NAME), e)


@contextlib.contextmanager
def hold(workdir: str, force: bool = False) -> Iterator[None]:
  """Holds WORKDIR/run.lock (process 0) for the ``with`` block.

  Every process calls it; all raise WorkdirLocked if process 0 could not take
  the lock.
  """
  me, error = None, None
  if jax.process_index() == 0:
    try:
      me = acquire(workdir, force)
    except Exception as e:  # pylint: disable=broad-except
      error = e  # Raised below, once every process knows.
  if jax.process_count() > 1:
    failed = multihost_utils.broadcast_one_to_all(np.asarray(error is not None))
    if bool(failed) and error is None:
      error = WorkdirLocked(f'Process 0 could not lock {workdir}; see its log.')
  if error is not None:
    raise error
  try:
    yield
  finally:
    if me is not None:
      release(workdir, me)
