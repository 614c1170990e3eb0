"""Writing a fine-tuning run's best checkpoint (WORKDIR/best) off the loop.

Saving the best params after an evaluation used to stall training for the
whole write (params through orbax, tokenizer, predictions). Here the loop
only waits for the params to reach host memory: every process takes part in
that gather (it is a collective), then process 0 writes in a background
thread while training goes on (``config.ckpt.async_save``; False writes in
the foreground, as before).

Kill safety: everything is written into ``best.partial`` and only a finished
directory replaces ``best`` (``best`` -> ``best.old``, ``best.partial`` ->
``best``, then ``best.old`` is removed), so a kill at any moment leaves either
the previous best or the new one, never a mix. If the kill falls between the
two renames, the next run in the workdir renames ``best.old`` back. One write
runs at a time; the next best, and the end of the run (``close``), wait for
it, so ``eval_results.json`` never names a best that is not on disk. An error
in the thread is raised there, in the loop. The train-state checkpoint and
this write never run at the same time (each waits for the other): two orbax
writes in flight at once were seen to hang. With several processes only
process 0 makes this save, which puts its orbax save counter ahead of the
others'; ``checkpoint.Checkpointer.save`` re-aligns the counters.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from bert_jax import pretrained
from bert_jax import storage
from bert_jax.train import evaluation
from bert_jax.train import pause_points

PARTIAL = '.partial'
OLD = '.old'


class BestWriter:
  """Writes DIRECTORY (the best checkpoint) from params, in the background."""

  def __init__(self, directory: str, model_config: Any, tokenizer: Any,
               background: bool = True):
    self.directory = storage.absolute(directory)
    self.model_config, self.tokenizer = model_config, tokenizer
    self.background = background
    # Called (on every process) before a write starts: the trainer sets it to
    # wait for its own checkpoint save, so two orbax writes never overlap.
    self.before_write: Any = None
    self._thread: threading.Thread | None = None
    self._error: BaseException | None = None
    if jax.process_index() == 0:
      _recover(self.directory)

  def save(self, params: Any, metadata: dict[str, Any],
           predictions_dir: str | None = None, step: int = 0) -> None:
    """Starts writing PARAMS, METADATA (task.json) and a copy of
    PREDICTIONS_DIR (the evaluation of STEP); returns once they are safe to
    change."""
    # A collective: every process, on the loop's thread. Copied, because the
    # train step donates the state's buffers, which a CPU device_get may alias.
    host = jax.tree.map(lambda x: np.array(x, copy=True),
                        evaluation.to_host(params))
    if self.before_write is not None:
      self.before_write()
    if jax.process_index() != 0:
      return
    self.wait()
    staging = self.directory + PARTIAL
    storage.rmtree(staging)
    storage.makedirs(staging)
    # Now, not in the thread: the next evaluation rewrites these files.
    if predictions_dir and storage.isdir(predictions_dir):
      storage.copytree(predictions_dir,
                       os.path.join(staging, os.path.basename(predictions_dir)))
    if not self.background:
      self._write(staging, host, metadata, step)
      return
    self._thread = threading.Thread(target=self._run, name='best-writer',
                                    args=(staging, host, metadata, step))
    self._thread.start()

  def _run(self, staging: str, host: Any, metadata: dict[str, Any],
           step: int) -> None:
    try:
      self._write(staging, host, metadata, step)
    except BaseException as e:  # pylint: disable=broad-except
      self._error = e  # Raised on the loop's thread by wait().

  def _write(self, staging: str, host: Any, metadata: dict[str, Any],
             step: int) -> None:
    pretrained.save_model_config(staging, self.model_config)
    self.tokenizer.save(os.path.join(staging, pretrained.TOKENIZER))
    pretrained.save_task_metadata(staging, metadata)
    # Only process 0 writes, so orbax must not wait for the others.
    options = ocp.options.MultiprocessingOptions(primary_host=0,
                                                 active_processes={0})
    with ocp.StandardCheckpointer(multiprocessing_options=options) as ckptr:
      ckptr.save(os.path.join(staging, pretrained.PARAMS), host)
    pause_points.pause('best', step)  # A kill mid-write (the kill -9 harness).
    _publish(staging, self.directory)

  def wait(self) -> None:
    """Blocks until the write in flight (if any) is on disk; raises its error."""
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    if self._error is not None:
      error, self._error = self._error, None
      raise RuntimeError(f'Writing the best checkpoint {self.directory} '
                         f'failed: {error}') from error


def _publish(staging: str, directory: str) -> None:
  old = directory + OLD
  storage.rmtree(old)
  if storage.exists(directory):
    storage.rename(directory, old)
  storage.rename(staging, directory)
  storage.rmtree(old)


def _recover(directory: str) -> None:
  """Undoes what a kill during a write left behind (module docstring)."""
  old = directory + OLD
  if not storage.exists(directory) and storage.isdir(old):
    storage.rename(old, directory)
  storage.rmtree(old)
  storage.rmtree(directory + PARTIAL)
