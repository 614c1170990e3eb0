"""Orbax checkpoints of a training run: train state, metadata, data iterator.

``WORKDIR/checkpoints/<step>/`` holds three items: ``state`` (the sharded
TrainState, StandardSave), ``metadata`` (JSON: step, config, best metric) and
``data`` (the grain iterator's position, one file per process). The RNG needs
no saving: every step's key is ``fold_in(key(seed), step)``.

What can go wrong on disk, and what this module does about it
(docs/reliability.md):

- A step is *good* when it is committed and readable: orbax 0.12.8 writes
  ``commit_success.txt`` into ``<step>.orbax-checkpoint-tmp`` and then renames
  it to ``<step>``; ``step_problem`` checks that marker (of the step and of
  each item) and parses the small JSON files. ``restore_latest`` tries the
  newest step and falls back to older ones, moving each broken one aside to
  ``WORKDIR/checkpoints.broken/`` (a later save of that step would collide
  with it) with a warning naming it.
- Retention is done here, not by orbax (``max_to_keep=None``): orbax deletes
  old steps in a save's finalize even when that save failed (it only logs the
  error), and counts broken steps among those it keeps. Here old steps go
  only after the new one is verified, and only good steps count, so the
  newest good checkpoint is never deleted.
- A failed write (disk full, quota, read-only, file size limit) raises
  ``CheckpointWriteError`` naming the directory and the good steps left; the
  partial temporary directory is removed to give the space back (again if
  tensorstore writes still in flight recreate it).
- With several processes, orbax keys the signals between them ("process 0
  has created the temporary directories") by a per-process count of saves.
  A save that only process 0 makes (the fine-tuning best checkpoint) puts
  its count ahead; the others then read an old signal as the new one and
  write into directories that do not exist yet. ``save`` first brings every
  process to the highest count (``_align_operation_ids``).
"""

from __future__ import annotations

import errno
import os
import re
import threading
import time
from typing import Any

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp
try:  # The counter orbax keys its cross-process signals by (no public name).
  from orbax.checkpoint._src.futures.synchronization import OperationIdGenerator
except ImportError:  # Another orbax layout: nothing to align.
  OperationIdGenerator = None

from bert_jax import storage
from bert_jax.data import loader as loader_lib
# Re-exported: the checks of a step on disk need no orbax (one judge for the
# trainer, pretrained.load_params and the launcher's supervisor).
from bert_jax.checkpoint_steps import COMMIT_MARKER, step_problem  # pylint: disable=unused-import

BROKEN_DIR = 'checkpoints.broken'      # Where broken steps are moved, beside checkpoints/.
_TMP_SUFFIX = '.orbax-checkpoint-tmp'
_WRITE_ERRNOS = {
    errno.ENOSPC: 'the disk is full', errno.EDQUOT: 'the disk quota is exceeded',
    errno.EROFS: 'the file system is read-only', errno.EACCES: 'permission denied',
    errno.EFBIG: 'a file size limit was hit', errno.EIO: 'an I/O error'}


class CheckpointWriteError(RuntimeError):
  """A checkpoint could not be written; the earlier good ones are intact."""


class CheckpointMismatchError(ValueError):
  """A good checkpoint that does not fit this run's state (another config)."""


def _failed_processes(ok: bool) -> list[int]:
  """The processes where OK is False (a collective with several)."""
  if jax.process_count() == 1:
    return [] if ok else [0]
  oks = multihost_utils.process_allgather(np.asarray(ok))
  return [int(i) for i in np.flatnonzero(~np.asarray(oks, bool))]


class _closing:  # pylint: disable=invalid-name
  """``with``: closes an orbax handler (its threads) at the end."""

  def __init__(self, handler: Any):
    self.handler = handler

  def __enter__(self) -> Any:
    return self.handler

  def __exit__(self, *exc: Any) -> None:
    self.handler.close()


def _leaf_shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
  # Paths as plain names: a TrainState attribute, a dict key and a namedtuple
  # field saved by orbax all become the same string.
  def name(k):
    for attr in ('name', 'key', 'idx'):
      if hasattr(k, attr):
        return str(getattr(k, attr))
    return str(k)
  flat = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: hasattr(x, 'shape') and hasattr(x, 'dtype'))[0]
  return {'/'.join(name(k) for k in p): (tuple(x.shape), str(np.dtype(x.dtype)))
          for p, x in flat}


def _align_operation_ids() -> None:
  """Brings orbax's save counter of every process to the highest one (a
  collective: every process calls it, with several; see the docstring)."""
  if jax.process_count() == 1 or OperationIdGenerator is None:
    return
  mine = int(OperationIdGenerator.get_current_operation_id())
  top = int(np.max(multihost_utils.process_allgather(np.int64(mine))))
  while int(OperationIdGenerator.get_current_operation_id()) < top:
    OperationIdGenerator.next_operation_id()


class Checkpointer:
  """A wrapper over ``ocp.CheckpointManager`` for train states."""

  def __init__(self, workdir: str, *, every_steps: int, keep: int,
               async_save: bool = True):
    if keep < 1:
      raise ValueError(f'ckpt.keep={keep} must be >= 1: the newest good '
                       'checkpoint is always kept.')
    workdir = storage.absolute(workdir)
    self.directory = os.path.join(workdir, 'checkpoints')
    self.broken_directory = os.path.join(workdir, BROKEN_DIR)
    self.every_steps, self.keep, self.async_save = every_steps, keep, async_save
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None,  # Retention is ours: see the module docstring.
        save_interval_steps=1, enable_async_checkpointing=async_save,
        create=True,
        # Leftovers of a killed save. Safe: run.lock keeps other runs out.
        cleanup_tmp_directories=True)
    self.manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_names=('state', 'metadata', 'data'))
    # Orbax deletes a killed save's leftovers in a background thread (on
    # object storage: every step folder without its commit marker) and waits
    # for that only at the next save. Listing steps meanwhile races with it:
    # a step seen in the listing is gone when it is read or moved aside.
    # Wait now (orbax's own wait; no public name in the pinned version).
    wait_cleanup = getattr(self.manager, '_maybe_await_cleanup_tmp_directory', None)
    if wait_cleanup is not None:
      wait_cleanup()
    if jax.process_count() > 1:  # Process 0 cleans; the others wait for it.
      multihost_utils.sync_global_devices('bert_jax:checkpoint_cleanup')
    self._pending: int | None = None  # Step written in the background.

  def step_dir(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def good_steps(self) -> list[int]:
    """Committed steps on disk, oldest first (reads the directory)."""
    if not storage.isdir(self.directory):
      return []
    steps = sorted(int(d) for d in storage.listdir(self.directory) if d.isdigit())
    return [s for s in steps if step_problem(self.step_dir(s)) is None]

  def latest_step(self) -> int | None:
    good = self.good_steps()
    return good[-1] if good else None

  def should_save(self, step: int, last_step: int) -> bool:
    return step == last_step or (self.every_steps > 0 and step % self.every_steps == 0)

  def save(self, step: int, state: Any, metadata: dict[str, Any],
           data_iterator: Any | None) -> None:
    """Starts saving STEP (in the background with async saves).

    Raises:
      CheckpointWriteError: this save or the previous one could not be written.
    """
    self._settle()
    _align_operation_ids()
    items = dict(state=ocp.args.StandardSave(state),
                 metadata=ocp.args.JsonSave(metadata))
    if data_iterator is not None:
      items['data'] = loader_lib.checkpoint_args(data_iterator)
    self._pending = step
    try:
      self.manager.save(step, args=ocp.args.Composite(**items), force=True)
    except Exception as e:  # pylint: disable=broad-except
      self._write_failed(step, e)
    if not self.async_save:
      self._settle()

  def _settle(self) -> None:
    """Waits for the save in flight, verifies it, then prunes old steps."""
    if self._pending is None:
      return
    step = self._pending
    try:
      self.manager.wait_until_finished()
      self.manager.check_for_errors()
    except Exception as e:  # pylint: disable=broad-except
      self._write_failed(step, e)
    problem = step_problem(self.step_dir(step))
    if problem is not None:  # Orbax logged the error and went on.
      self._write_failed(step, RuntimeError(problem))
    self._pending = None
    if jax.process_index() == 0:
      # Only good steps count: the K newest stay, the newest among them too.
      for old in self.good_steps()[:-self.keep]:
        storage.rmtree(self.step_dir(old))
    if jax.process_count() > 1:  # No process lists a step while 0 removes it.
      multihost_utils.sync_global_devices(f'bert_jax:pruned_after_{step}')
    self.manager.reload()

  def _write_failed(self, step: int, error: BaseException) -> None:
    self._pending = None
    if jax.process_index() == 0:  # Give the space back.
      self._remove_leftovers(step)
    self.manager.reload()
    good = self.good_steps()
    raise CheckpointWriteError(
        f'Could not write checkpoint step {step} to {self.step_dir(step)}: '
        f'{_why(error)}. The good checkpoints already there are intact '
        f'(steps {good or "none"}); free space or fix the directory, then '
        'relaunch to resume from the newest.') from error

  def _remove_leftovers(self, step: int, quiet_s: float = 1.0,
                        timeout_s: float = 60.0) -> None:
    """Removes STEP's temporary directories until none reappears for QUIET_S.

    The first failed write raises while the step's other writes still run:
    in orbax's threads (joined here) and inside tensorstore, whose pending
    writes land after the error and recreate the directory.
    """
    deadline = time.monotonic() + timeout_s
    _join_orbax_writers(timeout_s)
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
      leftovers = [n for n in storage.listdir(self.directory)
                   if n.startswith(f'{step}{_TMP_SUFFIX}')]
      for name in leftovers:
        storage.rmtree(os.path.join(self.directory, name))
      if leftovers:
        quiet_since = time.monotonic()
      elif time.monotonic() - quiet_since >= quiet_s:
        return
      time.sleep(0.1)

  def restore(self, step: int, abstract_state: Any, shardings: Any,
              data_iterator: Any | None) -> tuple[Any, dict[str, Any]]:
    """Restores (state, metadata) at STEP onto the given shardings.

    Each item is read by its orbax handler on this process alone: no barrier
    (orbax's Checkpointer ends a restore with one, where the other processes
    would wait 5 minutes for a process whose read failed).
    """
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        abstract_state, shardings)
    path = epath.Path(self.step_dir(step))
    with _closing(ocp.StandardCheckpointHandler()) as handler:
      state = handler.restore(path / 'state', args=ocp.args.StandardRestore(target))
    with _closing(ocp.JsonCheckpointHandler()) as handler:
      metadata = handler.restore(path / 'metadata', args=ocp.args.JsonRestore())
    if data_iterator is not None:
      # Apart and last: a failed state restore leaves the iterator untouched.
      with _closing(loader_lib.checkpoint_handler()) as handler:
        handler.restore(path / 'data', args=loader_lib.checkpoint_args(
            data_iterator, restore=True))
    return state, metadata

  def restore_latest(self, abstract_state: Any, shardings: Any,
                     data_iterator: Any | None
                     ) -> tuple[int, Any, dict[str, Any]] | None:
    """(step, state, metadata) of the newest good checkpoint; None if none.

    A broken step (no commit marker, unreadable, failing to restore) is moved
    to ``checkpoints.broken/`` with a warning, and the next older one is
    tried.

    With several processes, all of them agree on every decision: process 0
    lists the steps and makes the cheap checks, and broadcasts them; every
    process restores its own shards, and a step is used only if the restore
    worked on all of them (an all-gather); process 0 alone moves a broken
    one, and the others wait for it at a barrier.

    Raises:
      CheckpointMismatchError: a readable checkpoint has other leaves or
        shapes than ABSTRACT_STATE (the config changed): nothing is moved.
    """
    before = data_iterator.get_state() if data_iterator is not None else None
    for step in self._agreed_steps():
      problem = self._agreed_problem(step, abstract_state)
      if problem is None:
        try:
          state, metadata = self.restore(step, abstract_state, shardings,
                                         data_iterator)
        except Exception as e:  # pylint: disable=broad-except
          problem = f'restoring it failed ({_short(e)})'
          if jax.process_index() != 0:  # Process 0 names only the process.
            logging.warning('Process %d could not restore checkpoint %s: %s',
                            jax.process_index(), self.step_dir(step), problem)
        failed = _failed_processes(problem is None)
        if not failed:
          return step, state, metadata
        if data_iterator is not None:  # Restored on some processes only.
          data_iterator.set_state(before)
        problem = problem or (f'restoring it failed on process(es) {failed} '
                              '(see their logs)')
      self._move_aside(step, problem)
    return None

  def _agreed_steps(self) -> list[int]:
    """Step folders in checkpoints/, newest first, as process 0 lists them."""
    steps = []
    if jax.process_index() == 0 and storage.isdir(self.directory):
      steps = sorted((int(d) for d in storage.listdir(self.directory)
                      if d.isdigit()), reverse=True)
    if jax.process_count() == 1:
      return steps
    n = int(multihost_utils.broadcast_one_to_all(np.int32(len(steps))))
    if not n:
      return []
    mine = np.asarray(steps if steps else [0] * n, np.int32)
    return [int(s) for s in multihost_utils.broadcast_one_to_all(mine)]

  def _agreed_problem(self, step: int, abstract_state: Any) -> str | None:
    """Process 0's cheap verdict on STEP (markers, JSON, array metadata),
    the same on every process; None: try to restore it."""
    problem, mismatch = None, None
    if jax.process_index() == 0:
      problem = step_problem(self.step_dir(step))
      if problem is None:
        try:
          problem = self._check_fits(step, abstract_state)
        except CheckpointMismatchError as e:
          mismatch = e
    if jax.process_count() > 1:
      code = 0 if mismatch is None and problem is None else (
          2 if mismatch is not None else 1)
      code = int(multihost_utils.broadcast_one_to_all(np.int32(code)))
      if code == 2 and mismatch is None:
        mismatch = CheckpointMismatchError(
            f'Checkpoint {self.step_dir(step)} does not fit this run\'s state '
            '(a different model or optimizer config?); the log of process 0 '
            'names the differences.')
      if code == 1 and problem is None:
        problem = 'process 0 found it broken'
    if mismatch is not None:
      raise mismatch
    return problem

  def _check_fits(self, step: int, abstract_state: Any) -> str | None:
    handler = ocp.StandardCheckpointHandler()
    try:
      saved = _leaf_shapes(
          handler.metadata(epath.Path(self.step_dir(step)) / 'state').tree)
    except Exception as e:  # pylint: disable=broad-except
      return f'its array metadata is unreadable ({_short(e)})'
    finally:
      handler.close()
    wanted = _leaf_shapes(abstract_state)
    if saved != wanted:
      diff = sorted(set(saved.items()) ^ set(wanted.items()))[:4]
      raise CheckpointMismatchError(
          f'Checkpoint {self.step_dir(step)} does not fit this run\'s state '
          f'(a different model or optimizer config?); first differences '
          f'(path, (shape, dtype)): {diff}. Resume with the config that wrote '
          'it, or use another --workdir (init_from loads weights only).')
    return None

  def _move_aside(self, step: int, problem: str) -> None:
    if jax.process_index() == 0:  # The others wait at the barrier below.
      src = self.step_dir(step)
      dst = os.path.join(self.broken_directory, str(step))
      n = 1
      while storage.exists(dst):
        dst, n = os.path.join(self.broken_directory, f'{step}.{n}'), n + 1
      storage.makedirs(self.broken_directory)
      storage.rename(src, dst)
      logging.warning(
          'Skipping broken checkpoint %s: %s. Moved it to %s (delete it once '
          'you have looked); trying an older step.', src, problem, dst)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'bert_jax:moved_aside_{step}')
    self.manager.reload()

  def wait(self) -> None:
    self._settle()

  def close(self) -> None:
    try:
      self._settle()
    finally:
      self.manager.close()


def _join_orbax_writers(timeout_s: float) -> None:
  """Waits for orbax's write threads still running (private class in 0.12.8;
  without it, nothing to wait for)."""
  try:
    # pylint: disable-next=import-outside-toplevel
    from orbax.checkpoint._src.futures import future as ocp_future
  except ImportError:  # Moved in another orbax: the polling still removes.
    return
  kind = getattr(ocp_future, '_SignalingThread', None)
  if kind is None:
    return
  deadline = time.monotonic() + timeout_s
  for thread in threading.enumerate():
    if isinstance(thread, kind) and thread is not threading.current_thread():
      threading.Thread.join(thread, max(0.0, deadline - time.monotonic()))


def _why(error: BaseException) -> str:
  """A short cause for a failed write: the OS error if one can be found."""
  seen = error
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno in _WRITE_ERRNOS:
      return f'{_WRITE_ERRNOS[seen.errno]} ({seen})'
    # tensorstore reports OS errors inside a ValueError's text.
    m = re.search(r"os_error_code='?(\d+)", str(seen))
    if m and int(m.group(1)) in _WRITE_ERRNOS:
      return f'{_WRITE_ERRNOS[int(m.group(1))]} ({_short(seen)})'
    seen = seen.__cause__ or seen.__context__
  return _short(error)


def _short(error: BaseException) -> str:
  # tensorstore appends its whole JSON spec to every message.
  text = str(error).split(' [tensorstore_spec=')[0]
  return f'{type(error).__name__}: {text[:400]}'
