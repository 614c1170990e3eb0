"""Task name (``config.task``) -> the FinetuneTask that implements it."""

from __future__ import annotations

import importlib
from typing import Any

from bert_jax.models.config import ModelConfig

GLUE = ('cola', 'sst2', 'mrpc', 'qqp', 'stsb', 'mnli', 'qnli', 'rte', 'wnli')

# name -> 'module:function'; each function is
#   make(name, config, tokenizer, model_config) -> FinetuneTask
_BUILDERS = {
    **{g: 'bert_jax.tasks.classification:make_glue' for g in GLUE},
    'local_classification': 'bert_jax.tasks.classification:make_local',
    'local_regression': 'bert_jax.tasks.classification:make_local',
    'conll2003': 'bert_jax.tasks.tagging:make_conll2003',
    'local_ner': 'bert_jax.tasks.tagging:make_local',
    'squad_v1': 'bert_jax.tasks.qa:make_squad',
    'squad_v2': 'bert_jax.tasks.qa:make_squad',
    'local_qa': 'bert_jax.tasks.qa:make_local',
}

FINETUNE_TASKS = tuple(_BUILDERS)


def make_finetune_task(config: Any, tokenizer: Any, model_config: ModelConfig):
  """Builds the task named by ``config.task`` (reads its data eagerly)."""
  if config.task not in _BUILDERS:
    raise ValueError(f'config.task={config.task!r}; choose one of '
                     f'{("pretraining",) + FINETUNE_TASKS}.')
  module, fn = _BUILDERS[config.task].split(':')
  return getattr(importlib.import_module(module), fn)(
      config.task, config, tokenizer, model_config)
