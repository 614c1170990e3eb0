"""Checkpoint I/O: the bert_jax checkpoint directory that encode, conversion,
fine-tuning and ``init_from`` read. A leaf module: it imports only models.

Layout of a *pretrained directory* (written by ``convert from-hf`` and by
``save_pretrained``)::

  DIR/model_config.json   the ModelConfig (json)
  DIR/params/             orbax StandardCheckpointer: {'bert': ..., heads...}
  DIR/tokenizer/          vocab.txt or spiece.model, and tokenizer_config.json
  DIR/task.json           (fine-tuned checkpoints) the task's labels and facts

A pretraining or fine-tuning *workdir* is also accepted wherever a checkpoint
directory is: it holds ``model_config.json`` and ``tokenizer/`` at the top and
the train state in ``checkpoints/<step>/state``; the newest complete step
is read (``step_problem``: orbax's commit markers and the small JSON files).
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from bert_jax import storage
from bert_jax.checkpoint_steps import COMMIT_MARKER, step_problem  # pylint: disable=unused-import
from bert_jax.errors import UserInputError
from bert_jax.models import encoder as encoder_lib
from bert_jax.models.config import ModelConfig

MODEL_CONFIG = 'model_config.json'
PARAMS = 'params'
TOKENIZER = 'tokenizer'
CHECKPOINTS = 'checkpoints'
TASK_METADATA = 'task.json'


def save_model_config(directory: str, config: ModelConfig) -> None:
  storage.makedirs(directory)
  storage.write_text(os.path.join(directory, MODEL_CONFIG), config.to_json())


def load_model_config(directory: str) -> ModelConfig:
  path = os.path.join(directory, MODEL_CONFIG)
  if not storage.exists(path):
    raise FileNotFoundError(
        f'{path} not found: {directory!r} is not a bert_jax checkpoint '
        'directory (expected model_config.json, params/ or checkpoints/).')
  try:
    fields = json.loads(storage.read_text(path))
  except json.JSONDecodeError as e:
    raise UserInputError(f'{path}:{e.lineno}: not valid JSON ({e.msg}); '
                         'expected the model config bert_jax wrote.') from e
  try:
    return ModelConfig.from_dict(fields)
  except (TypeError, ValueError) as e:
    raise UserInputError(f'{path}: {e}') from e


def save_pretrained(directory: str, params: Any, config: ModelConfig,
                    tokenizer: Any | None = None) -> None:
  """Writes params (unboxed pytree), model config and tokenizer to DIRECTORY.

  With several processes every one must call it (orbax synchronises them);
  process 0 writes the files.
  """
  directory = storage.absolute(directory)
  if jax.process_index() == 0:
    save_model_config(directory, config)
    if tokenizer is not None:
      tokenizer.save(os.path.join(directory, TOKENIZER))
  params = jax.tree.map(np.asarray, nn.meta.unbox(params))
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(os.path.join(directory, PARAMS), params, force=True)


def _step_dirs(directory: str) -> list[str]:
  """The step folders of a workdir's checkpoints, newest first."""
  root = os.path.join(directory, CHECKPOINTS)
  if not storage.isdir(root):
    return []
  steps = sorted((int(d) for d in storage.listdir(root) if d.isdigit()),
                 reverse=True)
  return [os.path.join(root, str(s)) for s in steps]


def restore_numpy(path: str) -> Any:
  """Restores an orbax pytree as numpy arrays, whatever topology wrote it
  (a training run on 8 devices, read by one process with 4, say)."""
  with ocp.PyTreeCheckpointer() as ckptr:
    meta = ckptr.metadata(path)
    tree = getattr(meta, 'item_metadata', None) or meta
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                        tree, is_leaf=lambda x: hasattr(x, 'shape'))
    return ckptr.restore(path, args=ocp.args.PyTreeRestore(restore_args=args))


def load_params(directory: str) -> dict[str, Any]:
  """Params (numpy pytree) of a pretrained directory or a training workdir."""
  directory = storage.absolute(directory)
  params_dir = os.path.join(directory, PARAMS)
  if storage.isdir(params_dir):
    return _readable(restore_numpy, params_dir)
  step_dirs = _step_dirs(directory)
  if not step_dirs:
    raise FileNotFoundError(
        f'No params in {directory!r}: expected {params_dir} or a step folder '
        f'under {os.path.join(directory, CHECKPOINTS)}.')
  # The newest complete step, as a resumed run would restore: a step still
  # being written (or cut short by a kill) is skipped, with a warning.
  skipped = []
  for step_dir in step_dirs:
    problem = step_problem(step_dir)
    if problem is None:
      try:
        params = _readable(restore_numpy, os.path.join(step_dir, 'state'))
      except UserInputError as e:
        problem = str(e)
      else:
        if skipped:
          logging.warning('%s: read step %s; skipped newer incomplete '
                          'steps: %s', directory, os.path.basename(step_dir),
                          '; '.join(skipped))
        return params['params']
    skipped.append(f'{os.path.basename(step_dir)} ({problem})')
  raise UserInputError(
      f'No complete checkpoint in {os.path.join(directory, CHECKPOINTS)}: '
      + '; '.join(skipped))


def _readable(restore: Any, path: str) -> Any:
  """RESTORE(PATH), with a failure to read it reported as the input's."""
  try:
    return restore(path)
  except Exception as e:  # pylint: disable=broad-except
    # Orbax and tensorstore raise many types for a cut or foreign folder.
    why = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
    raise UserInputError(
        f'{path}: the params could not be read ({type(e).__name__}: {why}); '
        'expected an orbax checkpoint bert_jax wrote (truncated or '
        'copied only in part?).') from e


def tokenizer_dir(directory: str) -> str:
  path = os.path.join(storage.absolute(directory), TOKENIZER)
  if not storage.isdir(path):
    raise FileNotFoundError(f'No tokenizer in {directory!r}: {path} is missing.')
  return path


def encoder_params_for(params: dict[str, Any], config: ModelConfig,
                       scan_layers: bool) -> dict[str, Any]:
  """Re-lays the encoder ('bert') params for scanned or unrolled layers."""
  bert = params['bert']
  if 'layers' in bert and not scan_layers:
    bert = encoder_lib.unstack_layers(bert, config.num_layers)
  elif 'layers' not in bert and scan_layers:
    bert = encoder_lib.stack_layers(bert, config.num_layers)
  return {**params, 'bert': bert}


def load_pretrained(directory: str, scan_layers: bool | None = None
                    ) -> tuple[dict[str, Any], ModelConfig]:
  """Loads (params, model_config); optionally re-lays layers for scan or not."""
  config = load_model_config(directory)
  params = load_params(directory)
  if scan_layers is not None and scan_layers != config.scan_layers:
    params = encoder_params_for(params, config, scan_layers)
    config = config.replace(scan_layers=scan_layers)
  return params, config


def save_task_metadata(directory: str, metadata: dict[str, Any]) -> None:
  """Writes a fine-tuned task's facts (labels, task name...) to task.json."""
  storage.makedirs(directory)
  storage.write_text(os.path.join(directory, TASK_METADATA),
                     json.dumps(metadata, indent=2, sort_keys=True))


def load_task_metadata(directory: str) -> dict[str, Any] | None:
  """The task.json of a fine-tuned checkpoint, or None when there is none."""
  path = os.path.join(directory, TASK_METADATA) if directory else ''
  if not path or not storage.isfile(path):
    return None
  return json.loads(storage.read_text(path))


def saved_labels(directory: str) -> list[str] | None:
  """Class or tag names saved with a fine-tuned checkpoint, if any."""
  meta = load_task_metadata(directory)
  return (meta or {}).get('labels') or None
