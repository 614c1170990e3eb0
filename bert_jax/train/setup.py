"""One setup path for every run: tokenizer -> model config -> task -> initial
params, then the step count.

* Tokenizer: ``init_from``'s (continued pretraining and fine-tuning keep the
  checkpoint's vocabulary) unless ``data.tokenizer`` names one; a task with an
  ``inputs`` function (pretraining) may train one on its data.
* Model config: ``config.model`` with ``dtype='auto'`` resolved here and
  nowhere else; with ``init_from`` the architecture is the checkpoint's and
  only ``RUNTIME_FIELDS`` (dtype, dropout, layout, BiLSTM) apply on top.
* Initial params: fresh init, then every leaf the checkpoint has at the same
  path and shape (``match_params``); all encoder mismatches are reported in one
  error. They stay numpy here: the trainer hands them to the jitted init as
  arguments with their shardings, never as constants.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from absl import logging
import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import numpy as np

from bert_jax import pretrained
from bert_jax.models.config import RUNTIME_FIELDS, ModelConfig, resolve_auto_dtype
from bert_jax.tasks import registry
from bert_jax.tasks.base import Task
from bert_jax.text import load_tokenizer

# The encoder's params must fit a checkpoint exactly; a head that does not fit
# (another number of classes, say) starts fresh.
ENCODER = 'bert'


@dataclasses.dataclass
class RunSetup:
  task: Task
  model_config: ModelConfig
  tokenizer: Any
  init_params: dict[str, np.ndarray] | None  # '/'-joined path -> array
  num_steps: int
  eval_every: int
  stats: dict[str, Any]


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def _on_process_0_first(fn):
  """Process 0 runs FN first (it may write into the workdir, e.g. train a
  tokenizer); the others wait, then run it on the same files, so all agree."""
  out = fn() if jax.process_index() == 0 else None
  _sync('setup')
  return out if jax.process_index() == 0 else fn()


def tokenizer_path(config: Any) -> str:
  """The tokenizer to load ('' = none named: the task's inputs may train one).

  ``data.tokenizer`` wins over ``init_from``'s (a warning says so).
  """
  if config.data.get('tokenizer', ''):
    if config.init_from:
      logging.warning('data.tokenizer=%s replaces the tokenizer of init_from '
                      '%s: its ids must mean what they meant in pretraining.',
                      config.data.tokenizer, config.init_from)
    return config.data.tokenizer
  if config.init_from:
    return pretrained.tokenizer_dir(config.init_from)
  return ''


def resolve_model_config(config: Any, vocab_size: int) -> ModelConfig:
  """The run's ModelConfig (see the module docstring)."""
  fields = resolve_auto_dtype(config.model.to_dict())
  if config.init_from:
    base = pretrained.load_model_config(config.init_from)
    model_config = base.replace(**{k: fields[k] for k in RUNTIME_FIELDS})
  else:
    if fields['vocab_size'] == -1:
      fields['vocab_size'] = vocab_size
    model_config = ModelConfig.from_dict(fields)
  if model_config.vocab_size < vocab_size:
    raise ValueError(f'model.vocab_size={model_config.vocab_size} is smaller '
                     f'than the tokenizer vocabulary ({vocab_size}).')
  model_config.check_length(config.data.max_seq_length, 'data.max_seq_length')
  return model_config


def _flat(tree: Any) -> dict[str, Any]:
  return {jax.tree_util.keystr(p, simple=True, separator='/'): x
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def match_params(fresh: Any, loaded: Any, source: str,
                 require_all: bool = False) -> dict[str, np.ndarray]:
  """The checkpoint leaves that fit the model, by '/'-joined path.

  Args:
    fresh: The model's params (arrays or ShapeDtypeStructs).
    loaded: The checkpoint's params (numpy).
    source: Where LOADED came from, for messages.
    require_all: Every model leaf must come from the checkpoint (evaluation
      of a fine-tuned checkpoint).

  Returns:
    {path: array} of the leaves to take from LOADED; the others keep their
    fresh init (logged).

  Raises:
    ValueError: Listing every encoder leaf whose shape differs (the
      architecture does not fit), or, with REQUIRE_ALL, every missing leaf.
  """
  want, have = _flat(fresh), _flat(loaded)
  out, mismatched, fresh_heads = {}, [], set()
  for path, spec in want.items():
    got = have.get(path)
    if got is not None and tuple(got.shape) == tuple(spec.shape):
      out[path] = np.asarray(got)
    elif got is not None and path.startswith(ENCODER + '/'):
      mismatched.append(f'  {path}: checkpoint {tuple(got.shape)}, model '
                        f'{tuple(spec.shape)}')
    else:
      fresh_heads.add(path.split('/')[0] if not path.startswith(ENCODER + '/')
                      else '/'.join(path.split('/')[:2]))
  if mismatched:
    raise ValueError(f'init_from {source}: {len(mismatched)} encoder params do '
                     'not fit the model config:\n' + '\n'.join(mismatched))
  if require_all and len(out) != len(want):
    missing = sorted(p for p in want if p not in out)
    raise ValueError(f'config.eval_only needs a fine-tuned checkpoint with all '
                     f'the task\'s params; {source} lacks (or does not fit) '
                     f'{len(missing)}: {missing[:8]}.')
  for name in sorted(fresh_heads):
    logging.warning('init_from %s has no %r params that fit: they start fresh.',
                    source, name)
  unused = sorted({p.split('/')[0] for p in have} - {p.split('/')[0] for p in want})
  if unused:
    logging.info('init_from %s: %s not used by this task.', source, unused)
  return out


def initial_params(config: Any, task: Task, model_config: ModelConfig
                   ) -> dict[str, np.ndarray] | None:
  """Checkpoint params for TASK's model (None = random init, logged)."""
  if not config.init_from:
    if config.task != registry.PRETRAINING:
      logging.warning(
          'No config.init_from: training %s from RANDOM INIT. This is an '
          'ablation baseline, not a fine-tuning of a pretrained encoder.',
          config.task)
    return None
  loaded, _ = pretrained.load_pretrained(config.init_from,
                                         scan_layers=model_config.scan_layers)
  fresh = nn.meta.unbox(jax.eval_shape(
      task.model.init, jax.random.key(0), task.dummy_batch(1))['params'])
  return match_params(fresh, loaded, config.init_from,
                      require_all=bool(config.get('eval_only', False)))


def _num_examples(features: Any) -> int:
  if isinstance(features, dict):
    return len(next(iter(features.values())))
  return len(features)  # A grain data source.


def _steps(config: Any, task: Task) -> tuple[int, int]:
  """(num_steps, steps per epoch or 0); epochs count when num_steps is 0."""
  t = config.train
  if config.get('eval_only', False):
    return max(int(t.num_steps), 1), 0  # Reads no training data.
  if 'num_epochs' not in t:
    return int(t.num_steps), 0
  per_epoch = max(_num_examples(task.train_features()) // t.global_batch_size, 1)
  if t.num_steps > 0:
    return int(t.num_steps), per_epoch
  return max(int(math.ceil(t.num_epochs * per_epoch)), 1), per_epoch


def build(config: Any, workdir: str) -> RunSetup:
  """Everything a run needs before the mesh: see the module docstring."""
  entry = registry.get(config.task)
  inputs_fn = entry.resolve('inputs')
  tok_path = tokenizer_path(config)
  extra: dict[str, Any] = {}
  if inputs_fn is not None:
    tok, extra['inputs'] = _on_process_0_first(
        lambda: inputs_fn(config, workdir, tok_path))
  elif tok_path:
    tok = load_tokenizer(tok_path)
  else:
    raise ValueError(
        'Without config.init_from, config.data.tokenizer must name a vocab.txt, '
        'a .model file or a tokenizer directory.')
  model_config = resolve_model_config(config, tok.vocab_size)
  task = registry.make_task(config, tok, model_config, **extra)
  init_params = initial_params(config, task, model_config)
  num_steps, per_epoch = _steps(config, task)
  stats = dict(getattr(extra.get('inputs'), 'stats', {}) or {})
  if jax.process_index() == 0:
    pretrained.save_model_config(workdir, model_config)
    tok.save(os.path.join(workdir, pretrained.TOKENIZER))
    pretrained.save_task_metadata(workdir, task.metadata())
  logging.info('%s: %d steps%s; %s', config.task, num_steps,
               f' ({per_epoch} per epoch)' if per_epoch else '', stats)
  eval_every = config.train.eval_every_steps or per_epoch
  return RunSetup(task, model_config, tok, init_params, num_steps, eval_every,
                  stats)
