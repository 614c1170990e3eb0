"""Two-phase pretraining (``recipe=bert_2phase``): sequence 128, then 512.

The BERT paper trains 90% of the steps at length 128 and the last 10% at 512
("to learn the positional embeddings"), and NVIDIA's recipe does the same.
With ``config.phase2.fraction > 0`` ``run`` does that as two ordinary runs:

* phase 1: ``(1 - fraction) x train.num_steps`` steps at
  ``data.max_seq_length``, in ``WORKDIR/phase1``;
* phase 2: the remaining steps at ``phase2.max_seq_length`` (and
  ``phase2.max_predictions_per_seq``, ``phase2.global_batch_size``), in
  ``WORKDIR`` itself, with ``init_from=WORKDIR/phase1``: phase 1's params and
  tokenizer, a fresh optimizer and learning-rate schedule (warmup over
  ``phase2.warmup_fraction`` of phase 2), as BERT's ``init_checkpoint`` did.

So ``WORKDIR`` ends as a normal pretraining workdir (its checkpoints,
``eval_results.json`` at length 512, usable as ``init_from``), with phase 1's
run beside it. Each phase resumes from its own checkpoints; phase 1 counts as
done when ``WORKDIR/phase1/phase_done.json`` exists, so a rerun after a
preemption in phase 2 goes straight to phase 2. The position table must have
``phase2.max_seq_length`` rows from the start (checked before phase 1 runs).
"""

from __future__ import annotations

import os
from typing import Any

from bert_jax import storage
from bert_jax.models.config import ModelConfig
from bert_jax.train import trainer

PHASE1 = 'phase1'
DONE = 'phase_done.json'


def is_two_phase(config: Any) -> bool:
  return float(config.get('phase2', {}).get('fraction', 0.0) or 0.0) > 0.0


def split_steps(num_steps: int, fraction: float) -> tuple[int, int]:
  """(phase 1 steps, phase 2 steps) of NUM_STEPS; both must be >= 1."""
  if not 0.0 < fraction < 1.0:
    raise ValueError(f'phase2.fraction={fraction} must be in (0, 1) '
                     '(0 = one phase).')
  second = int(round(num_steps * fraction))
  first = num_steps - second
  if first < 1 or second < 1:
    raise ValueError(f'train.num_steps={num_steps} with phase2.fraction={fraction} '
                     f'leaves {first} + {second} steps; each phase needs >= 1.')
  return first, second


def phase_configs(config: Any, workdir: str) -> list[tuple[Any, str]]:
  """[(config, workdir)] of the two phases."""
  p2 = config.phase2
  first, second = split_steps(int(config.train.num_steps), float(p2.fraction))
  fields = {k: v for k, v in config.model.to_dict().items() if k != 'dtype'}
  # The position table is sized once: phase 2 must fit it from the start.
  ModelConfig(**{**fields, 'vocab_size': 1}).check_length(
      int(p2.max_seq_length), 'phase2.max_seq_length')
  if int(p2.max_seq_length) < int(config.data.max_seq_length):
    raise ValueError(f'phase2.max_seq_length={p2.max_seq_length} is shorter than '
                     f'data.max_seq_length={config.data.max_seq_length}.')
  phase1_dir = os.path.join(workdir, PHASE1)
  c1 = config.copy_and_resolve_references()
  c2 = config.copy_and_resolve_references()
  with c1.unlocked(), c2.unlocked():
    c1.train.num_steps = first
    c1.phase2.fraction = 0.0
    c2.train.num_steps = second
    c2.phase2.fraction = 0.0
    c2.init_from = phase1_dir
    c2.data.max_seq_length = int(p2.max_seq_length)
    c2.data.max_predictions_per_seq = int(p2.max_predictions_per_seq)
    c2.data.prepared_dir = p2.prepared_dir
    if p2.global_batch_size:
      c2.train.global_batch_size = int(p2.global_batch_size)
    c2.optim.warmup_steps = 0
    c2.optim.warmup_fraction = float(p2.warmup_fraction)
  return [(c1, phase1_dir), (c2, workdir)]


def run(config: Any, workdir: str) -> dict[str, Any]:
  """``trainer.run``, in two phases when ``config.phase2.fraction > 0``."""
  if not is_two_phase(config):
    return trainer.run(config, workdir)
  workdir = storage.absolute(workdir)
  (c1, d1), (c2, d2) = phase_configs(config, workdir)
  trainer.validate(c1)  # Both phases' values, before phase 1 spends hours
  check = c2.copy_and_resolve_references()  # (phase 1's dir is not there yet).
  with check.unlocked():
    check.init_from = ''
  trainer.validate(check)
  done = os.path.join(d1, DONE)
  if not storage.exists(done):
    result = trainer.run(c1, d1)
    if result['step'] < c1.train.num_steps:  # Preempted or stop_after_steps.
      return result
    storage.write_json(done, {'step': result['step']})
  return trainer.run(c2, d2)
