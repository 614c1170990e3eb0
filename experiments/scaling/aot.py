r"""Ahead-of-time compilation of the real train step for a TPU slice, on any host.

Usage (from the repository root)::

  python -m experiments.scaling.aot --config=configs/pretrain.py:size=large \
      --topology=v5p-128 [--num_slices=2] [--config.mesh.fsdp=16] \
      [--config.model.remat_policy=full] [--mfu=0.4,0.5] [--json=OUT.json]

  python -m experiments.scaling.aot --config=configs/finetune.py:task=squad_v1,size=large \
      --topology=v5e-16 --config.train.global_batch_size=48

It builds what ``launch.py`` would build on the slice, without data or
parameters: the task from the config (no corpus is read: the step needs only
the model and the batch's shapes), the trainer's own state shardings
(``step.state_shardings``) on the trainer's mesh (``sharding.make_mesh`` over
the slice's devices) and its jitted train step (``step.jit_steps``), lowered
on abstract inputs (``jax.ShapeDtypeStruct`` with shardings) and compiled by
XLA:TPU for that topology. It prints, per chip: the compiler's argument,
output and temporary memory against the chip's HBM, FLOPs per step, the
collectives of the compiled program, and an estimated step time, tokens/s and
time for ``train.num_steps`` steps at each ``--mfu`` of the chips' peak.

The compiler is the judge: a step that does not fit fails to compile with
RESOURCE_EXHAUSTED, which is reported (exit status 2) with the compiler's own
account of the memory. Needs the ``libtpu`` wheel (``pip install -e
'.[tpu]'``); without it the slice's chips are stood in for by as many fake CPU
devices (said in the output): sharding and shape errors still show, memory
and collectives are then XLA:CPU's. docs/scaling.md has a table made with it.

``model.dtype='auto'`` means bfloat16 here (the target is an accelerator);
``model.vocab_size=-1`` (from the tokenizer) becomes ``--vocab_size``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import types
from typing import Any

from absl import app
from absl import flags
import flax.linen as nn
import jax
from ml_collections import config_flags

from bert_jax.data.finetune import conll
from bert_jax.data.finetune import glue
from bert_jax.tasks import registry
from bert_jax.tasks.classification import ClassificationTask
from bert_jax.tasks.pretraining import PretrainingTask
from bert_jax.tasks.qa import QaTask
from bert_jax.tasks.tagging import TaggingTask
from bert_jax.train import optim
from bert_jax.train import setup as setup_lib
from bert_jax.train import sharding
from bert_jax.train import step as step_lib
from bert_jax.train import trainer
from experiments.scaling import aot_report
from experiments.scaling import aot_topology

config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/pretrain.py:size=large.',
    lock_config=True)
flags.DEFINE_string('topology', None,
                    'TPU slice: v4-8, v5e-16, v5p-128, v6e-256, or v5e:4x4 ...')
flags.DEFINE_integer('num_slices', 1, 'Slices joined over DCN (multislice).')
flags.DEFINE_bool('fake', None, 'Fake CPU devices instead of TPU ones; '
                  'default: fake only when libtpu is not installed.')
flags.DEFINE_list('mfu', ['0.4', '0.5'],
                  'Model FLOPs utilisations to estimate step time at.')
flags.DEFINE_float('peak_tflops', 0.0, 'Peak bf16 TFLOP/s per chip; 0 = the '
                   "chip's published figure.")
flags.DEFINE_float('hbm_gib', 0.0, "HBM per chip in GiB; 0 = the chip's.")
flags.DEFINE_integer('vocab_size', 30522, 'Vocabulary when model.vocab_size '
                     'is -1 (BERT uncased: 30522).')
flags.DEFINE_integer('num_labels', 2, 'Classes or tags of local_* fine-tuning '
                     'tasks (their labels come from data files).')
flags.DEFINE_string('json', '', 'Also write the report here as JSON.')
flags.DEFINE_string('hlo', '', 'Also write the optimised HLO text here.')

# BERT uncased special ids [PAD] [UNK] [CLS] [SEP] [MASK]: masking needs them.
_SPECIAL_IDS, _MASK_ID = (0, 100, 101, 102, 103), 103


class DoesNotFit(RuntimeError):
  """XLA ran out of device memory compiling the step."""


@dataclasses.dataclass
class Compiled:
  """A compiled train step and what it was built from."""
  compiled: Any
  task: Any
  model_config: Any
  mesh: Any
  config: Any
  lower_s: float
  compile_s: float
  params: Any  # Abstract params (ShapeDtypeStructs).


def _tokenizer_like(vocab_size: int) -> Any:
  # What a task's constructor reads of a tokenizer; nothing is tokenized.
  return types.SimpleNamespace(special_ids=_SPECIAL_IDS, mask_id=_MASK_ID,
                               vocab_size=vocab_size)


def _labels(n: int) -> tuple[str, ...]:
  if n < 2:
    raise ValueError(f'--num_labels must be >= 2, got {n}.')
  return tuple(f'label_{i}' for i in range(n))


def abstract_task(config: Any, model_config: Any, num_labels: int = 2) -> Any:
  """The task of ``config.task`` built without its data (no examples read).

  Each registry builder reads data to learn what the task's head needs (label
  names); here those come from the name tables, or ``num_labels`` for local_*
  tasks whose labels live in the data files.
  """
  name, d = config.task, config.data
  builder = registry.get(name).builder
  # With init_from the vocabulary is the checkpoint's, not --vocab_size.
  tok = _tokenizer_like(model_config.vocab_size)
  args = (name, d, tok, model_config, [], {})
  if name == registry.PRETRAINING:
    return PretrainingTask(name, d, tok, model_config)
  if builder.endswith('classification:make_glue'):
    return ClassificationTask(*args, glue.LABEL_NAMES[name])
  if builder.endswith('classification:make_local'):
    regression = name == 'local_regression'
    return ClassificationTask(*args, None if regression else _labels(num_labels))
  if builder.endswith('tagging:make_conll2003'):
    return TaggingTask(*args, conll.CONLL2003_NER_LABELS)
  if builder.endswith('tagging:make_local'):
    return TaggingTask(*args, ('O',) + _labels(num_labels)[1:])
  if builder.startswith('bert_jax.tasks.qa:'):
    return QaTask(*args, version_2=name != 'squad_v1')
  raise ValueError(f'experiments/scaling/aot.py cannot build task {name!r} (builder '
                   f'{builder}) without its data: add it to abstract_task.')


def _resolve(config: Any, vocab_size: int) -> Any:
  """A copy of CONFIG with dtype and vocabulary fixed for the target."""
  config = config.copy_and_resolve_references()
  if config.model.dtype == 'auto':
    # The trainer resolves 'auto' by the backend it runs on; ours is the
    # compiling host's CPU, the target is a TPU.
    config.model.dtype = 'bfloat16'
  if config.model.vocab_size == -1 and not config.init_from:
    config.model.vocab_size = vocab_size
  return config


def compile_train_step(config: Any, target: aot_topology.Target | Any,
                       vocab_size: int = 30522, num_labels: int = 2
                       ) -> Compiled:
  """Lowers and compiles the trainer's train step for TARGET's devices.

  TARGET is an ``aot_topology.Target`` or anything with its ``name``,
  ``devices``, ``num_chips`` and ``num_hosts`` (``aot_topology.LocalTarget``:
  this host's own devices, as experiments/scaling/compile_scale.py uses).

  Raises:
    ValueError: A config the trainer would reject on that slice.
    DoesNotFit: XLA ran out of device memory (the message is XLA's).
  """
  config = _resolve(config, vocab_size)
  trainer.validate(config, num_devices=target.num_chips)
  t = config.train
  if t.global_batch_size % target.num_hosts:
    raise ValueError(
        f'train.global_batch_size={t.global_batch_size} is not divisible by '
        f'the {target.num_hosts} hosts of {target.name}: each host loads an '
        'equal share of every batch.')
  model_config = setup_lib.resolve_model_config(config, vocab_size)
  task = abstract_task(config, model_config, num_labels)
  tx, schedule = optim.make_optimizer(config.optim, max(int(t.num_steps), 1))
  mesh = sharding.make_mesh(config.mesh, devices=list(target.devices))
  rules = sharding.rules_from_config(config.logical_axis_rules)

  # Outside the mesh context: state_shardings makes a concrete PRNG key,
  # which cannot be placed on compile-only TPU devices.
  abstract, shardings = step_lib.state_shardings(task, tx, mesh, rules)
  state = jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      abstract, shardings)
  batch_sh = sharding.batch_sharding(mesh)
  batch = {k: jax.ShapeDtypeStruct((t.global_batch_size,) + tuple(shape),
                                   dtype, sharding=batch_sh)
           for k, (shape, dtype) in task.feature_spec().items()}
  key = jax.eval_shape(lambda: jax.random.key(0))
  rng = jax.ShapeDtypeStruct(key.shape, key.dtype,
                             sharding=sharding.replicated(mesh))
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    train_step, _ = step_lib.jit_steps(task, tx, schedule, mesh, rules,
                                       shardings, t.grad_accum_steps)
    t0 = time.perf_counter()
    lowered = train_step.lower(state, batch, rng)
    t1 = time.perf_counter()
    try:
      compiled = lowered.compile()
    except Exception as e:  # XlaRuntimeError; its type moves between versions.
      if 'RESOURCE_EXHAUSTED' in str(e) or 'Ran out of memory' in str(e):
        raise DoesNotFit(str(e)) from e
      raise
    t2 = time.perf_counter()
  return Compiled(compiled, task, model_config, mesh, config, t1 - t0,
                  t2 - t1, state.params)


def run(config: Any, topology: str, num_slices: int = 1,
        fake: bool | None = None, mfu: tuple[float, ...] = (0.4, 0.5),
        peak_tflops: float = 0.0, hbm_gib: float = 0.0,
        vocab_size: int = 30522, num_labels: int = 2, hlo_path: str = ''
        ) -> dict[str, Any]:
  """Compiles for TOPOLOGY and returns the report (see aot_report.report).

  A step that does not fit returns a report with ``fits: False`` and the
  compiler's message instead of raising.
  """
  target = aot_topology.target(topology, num_slices, fake)
  hbm = hbm_gib * aot_topology.GIB if hbm_gib else target.chip.hbm_bytes
  peak = peak_tflops * 1e12 if peak_tflops else target.chip.peak_bf16_flops
  try:
    c = compile_train_step(config, target, vocab_size, num_labels)
  except DoesNotFit as e:
    return aot_report.does_not_fit(config, target, hbm, str(e))
  if hlo_path:
    with open(hlo_path, 'w') as f:
      f.write(c.compiled.as_text())
  return aot_report.report(c, target, hbm, peak, mfu)


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  if not f.config or not f.topology:
    raise app.UsageError('--config and --topology are required.')
  try:
    mfu = tuple(float(x) for x in f.mfu)
  except ValueError as e:
    raise app.UsageError(f'--mfu takes numbers, got {f.mfu}.') from e
  if not mfu or not all(0 < x <= 1 for x in mfu):
    raise app.UsageError(f'--mfu values must be in (0, 1], got {f.mfu}.')
  result = run(f.config, f.topology, f.num_slices, f.fake, mfu,
               f.peak_tflops, f.hbm_gib, f.vocab_size, f.num_labels, f.hlo)
  result['command'] = ' '.join(['python -m experiments.scaling.aot'] + sys.argv[1:])
  print(aot_report.format_report(result))
  if f.json:
    with open(f.json, 'w') as out:
      json.dump(result, out, indent=2, sort_keys=True, default=str)
  return 0 if result['fits'] else 2


if __name__ == '__main__':
  app.run(lambda argv: sys.exit(main(argv)))
