"""Orbax checkpoints of a training run: train state, metadata, data iterator.

``WORKDIR/checkpoints/<step>/`` holds three items: ``state`` (the sharded
TrainState, StandardSave), ``metadata`` (JSON: step, config, best metric) and
``data`` (the grain iterator's position, one file per process). The RNG needs
no saving: every step's key is ``fold_in(key(seed), step)``.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from bert_jax.data import loader as loader_lib


class Checkpointer:
  """A thin wrapper over ``ocp.CheckpointManager`` for train states."""

  def __init__(self, workdir: str, *, every_steps: int, keep: int,
               async_save: bool = True):
    self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=1,
        enable_async_checkpointing=async_save, create=True)
    self.every_steps = every_steps
    self.manager = ocp.CheckpointManager(
        self.directory, options=options,
        item_names=('state', 'metadata', 'data'))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def should_save(self, step: int, last_step: int) -> bool:
    return step == last_step or (self.every_steps > 0 and step % self.every_steps == 0)

  def save(self, step: int, state: Any, metadata: dict[str, Any],
           data_iterator: Any | None) -> None:
    items = dict(state=ocp.args.StandardSave(state),
                 metadata=ocp.args.JsonSave(metadata))
    if data_iterator is not None:
      items['data'] = loader_lib.checkpoint_args(data_iterator)
    self.manager.save(step, args=ocp.args.Composite(**items), force=True)

  def restore(self, step: int, abstract_state: Any, shardings: Any,
              data_iterator: Any | None) -> tuple[Any, dict[str, Any]]:
    """Restores (state, metadata) at STEP onto the given shardings."""
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        abstract_state, shardings)
    items = dict(state=ocp.args.StandardRestore(target),
                 metadata=ocp.args.JsonRestore())
    if data_iterator is not None:
      items['data'] = loader_lib.checkpoint_args(data_iterator, restore=True)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    return restored['state'], restored['metadata']

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
