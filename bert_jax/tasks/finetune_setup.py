"""Builds a fine-tuning run: tokenizer, model config, task, initial params.

With ``config.init_from`` the architecture and tokenizer are the
checkpoint's; the non-architectural fields of ``config.model`` (dtype,
dropout, layout, BiLSTM) still apply. Without it the model starts from random
init, which is an ablation baseline and says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import flax.linen as nn
import jax
from absl import logging

from bert_jax.models.config import ModelConfig, resolve_auto_dtype
from bert_jax.tasks import registry
from bert_jax.train import pretrained

# Fields of config.model that apply on top of a checkpoint's architecture.
RUNTIME_FIELDS = ('dtype', 'param_dtype', 'scan_layers', 'remat_policy',
                  'attention_impl',
                  'hidden_dropout', 'attention_dropout', 'bilstm_layers',
                  'bilstm_hidden')
TASK_METADATA = 'task.json'


@dataclasses.dataclass
class FinetuneSetup:
  task: Any
  model_config: ModelConfig
  tokenizer: Any
  init_params: Any | None
  num_steps: int
  steps_per_epoch: int


def _model_config(config: Any, tokenizer: Any) -> ModelConfig:
  model = resolve_auto_dtype(config.model.to_dict())
  if config.init_from:
    base = pretrained.load_model_config(config.init_from)
    return base.replace(**{k: model[k] for k in RUNTIME_FIELDS})
  if model['vocab_size'] == -1:
    model['vocab_size'] = tokenizer.vocab_size
  return ModelConfig.from_dict(model)


def _tokenizer(config: Any):
  from bert_jax.text import load_tokenizer  # pylint: disable=g-import-not-at-top
  if config.init_from:
    return load_tokenizer(pretrained.tokenizer_dir(config.init_from))
  if not config.data.tokenizer:
    raise ValueError(
        'Without config.init_from, config.data.tokenizer must name a vocab.txt, '
        'a .model file or a tokenizer directory.')
  return load_tokenizer(config.data.tokenizer)


def _init_params(config: Any, task: Any, model_config: ModelConfig) -> Any | None:
  """Checkpoint params that fit the task's model; the rest start fresh."""
  if not config.init_from:
    logging.warning(
        'No config.init_from: training %s from RANDOM INIT. This is an '
        'ablation baseline, not a fine-tuning of a pretrained encoder.',
        config.task)
    return None
  params = pretrained.load_params(config.init_from)
  params = pretrained.encoder_params_for(params, model_config,
                                         model_config.scan_layers)
  fresh = nn.meta.unbox(jax.eval_shape(
      task.model.init, jax.random.key(0), task.dummy_batch(1))['params'])
  shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)
  out = {}
  for key in fresh:
    if key not in params:
      logging.info('init_from has no %r params: they start fresh.', key)
      continue
    if key == 'bert':
      out[key] = _fitting_encoder(params[key], fresh[key], config, model_config)
    elif shapes(params[key]) != shapes(fresh[key]):
      logging.info('init_from %r params do not fit this task: they start fresh.', key)
    else:
      out[key] = params[key]
  if config.eval_only and set(out) != set(fresh):
    raise ValueError(
        f'config.eval_only needs a fine-tuned checkpoint with all of '
        f'{sorted(fresh)}; {config.init_from} has only {sorted(out)}.')
  return out


def _fitting_encoder(loaded, fresh, config, model_config):
  """The checkpoint's encoder; sub-modules it lacks (pooler, BiLSTM) start fresh."""
  shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)
  out = {}
  for key, value in fresh.items():
    if key not in loaded:
      logging.info('init_from has no encoder %r: it starts fresh.', key)
      continue
    if shapes(loaded[key]) != shapes(value):
      raise ValueError(
          f'init_from {config.init_from}: encoder {key!r} does not fit the model '
          f'config {model_config.to_dict()}: {shapes(loaded[key])} vs '
          f'{shapes(value)}.')
    out[key] = loaded[key]
  return out


def setup(config: Any, workdir: str) -> FinetuneSetup:
  tok = _tokenizer(config)
  model_config = _model_config(config, tok)
  task = registry.make_finetune_task(config, tok, model_config)
  init_params = _init_params(config, task, model_config)
  batch = config.train.global_batch_size
  # eval_only never reads the training data (it may be absent, or large).
  n = batch if config.eval_only else len(next(iter(task.train_features().values())))
  steps_per_epoch = max(n // batch, 1)
  if config.train.num_steps > 0:
    num_steps = int(config.train.num_steps)
  else:
    num_steps = max(int(math.ceil(config.train.num_epochs * steps_per_epoch)), 1)
  if jax.process_index() == 0:
    pretrained.save_model_config(workdir, model_config)
    tok.save(os.path.join(workdir, pretrained.TOKENIZER))
    with open(os.path.join(workdir, TASK_METADATA), 'w') as f:
      json.dump(task.metadata(), f, indent=2, sort_keys=True)
  logging.info('%s: %d training features, %d steps (%d per epoch)',
               config.task, n, num_steps, steps_per_epoch)
  return FinetuneSetup(task, model_config, tok, init_params, num_steps,
                       steps_per_epoch)
