"""The one table of task names (``config.task``) -> the module that builds it.

Every builder is ``make(name, config, tokenizer, model_config, **inputs)`` and
returns a ``bert_jax.tasks.base.Task``. A task whose tokenizer may come from
its own data (pretraining trains one on the corpus) also names an ``inputs``
function ``(config, workdir, tokenizer_path) -> (tokenizer, inputs)``, which
setup runs before the model config exists; its result reaches the builder as
``inputs=``. Adding a task is one entry here plus its module.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable

from bert_jax.data.finetune import glue

PRETRAINING = 'pretraining'


@dataclasses.dataclass(frozen=True)
class TaskEntry:
  builder: str     # 'module:function'
  inputs: str = ''  # optional 'module:function' (see the module docstring)

  def resolve(self, what: str) -> Callable[..., Any] | None:
    spec = getattr(self, what)
    if not spec:
      return None
    module, fn = spec.split(':')
    return getattr(importlib.import_module(module), fn)


_CLASSIFICATION = 'bert_jax.tasks.classification'
TASKS: dict[str, TaskEntry] = {
    PRETRAINING: TaskEntry('bert_jax.tasks.pretraining:make',
                           inputs='bert_jax.tasks.pretraining:load_inputs'),
    **{g: TaskEntry(f'{_CLASSIFICATION}:make_glue') for g in glue.TASKS},
    'local_classification': TaskEntry(f'{_CLASSIFICATION}:make_local'),
    'local_regression': TaskEntry(f'{_CLASSIFICATION}:make_local'),
    'conll2003': TaskEntry('bert_jax.tasks.tagging:make_conll2003'),
    'local_ner': TaskEntry('bert_jax.tasks.tagging:make_local'),
    'squad_v1': TaskEntry('bert_jax.tasks.qa:make_squad'),
    'squad_v2': TaskEntry('bert_jax.tasks.qa:make_squad'),
    'local_qa': TaskEntry('bert_jax.tasks.qa:make_local'),
}
NAMES = tuple(TASKS)
FINETUNE_TASKS = tuple(n for n in NAMES if n != PRETRAINING)
# Extractive QA (SQuAD-style windows: configs/finetune.py gives them longer
# rows), read off the table: the tasks the QA module builds.
QA_TASKS = tuple(n for n, e in TASKS.items()
                 if e.builder.split(':')[0] == 'bert_jax.tasks.qa')


def get(name: str) -> TaskEntry:
  """The entry of NAME; a clear error listing the valid names otherwise."""
  if name not in TASKS:
    raise ValueError(f'config.task={name!r}; choose one of {NAMES}.')
  return TASKS[name]


def make_task(config: Any, tokenizer: Any, model_config: Any,
              **inputs: Any):
  """Builds the task named by ``config.task`` (reads its data)."""
  return get(config.task).resolve('builder')(
      config.task, config, tokenizer, model_config, **inputs)
