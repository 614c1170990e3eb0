"""Optimizers and learning-rate schedules (BERT defaults: AdamW, warmup, linear decay)."""

from __future__ import annotations

from typing import Any

import jax
import optax

OPTIMIZERS = ('adamw', 'lamb')
SCHEDULES = ('linear', 'cosine', 'constant')


def learning_rate_schedule(optim: Any, total_steps: int) -> optax.Schedule:
  """Linear warmup to optim.learning_rate, then linear/cosine decay to 0."""
  lr, warmup = float(optim.learning_rate), int(optim.warmup_steps)
  if optim.get('warmup_fraction') and not warmup:
    warmup = int(round(float(optim.warmup_fraction) * total_steps))
  warmup = min(warmup, total_steps)
  decay_steps = max(total_steps - warmup, 1)
  if optim.schedule not in SCHEDULES:
    raise ValueError(f'optim.schedule={optim.schedule!r}; choose one of {SCHEDULES}.')
  if optim.schedule == 'linear':
    decay = optax.linear_schedule(lr, 0.0, decay_steps)
  elif optim.schedule == 'cosine':
    decay = optax.cosine_decay_schedule(lr, decay_steps)
  else:
    decay = optax.constant_schedule(lr)
  if warmup == 0:
    return decay
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup), decay], [warmup])


def decay_mask(params: Any) -> Any:
  """True where weight decay applies: not on biases or norm parameters."""
  def keep(path, _):
    names = [getattr(p, 'key', str(p)) for p in path]
    leaf = names[-1]
    in_norm = any('norm' in str(n).lower() for n in names)
    return not (leaf == 'bias' or in_norm)
  return jax.tree_util.tree_map_with_path(keep, params)


def make_optimizer(optim: Any, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Clip by global norm, then AdamW or LAMB with the schedule."""
  if optim.name not in OPTIMIZERS:
    raise ValueError(f'optim.name={optim.name!r}; choose one of {OPTIMIZERS}.')
  schedule = learning_rate_schedule(optim, total_steps)
  kw = dict(learning_rate=schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
            weight_decay=optim.weight_decay, mask=decay_mask)
  core = optax.adamw(**kw) if optim.name == 'adamw' else optax.lamb(**kw)
  chain = [core]
  if optim.grad_clip_norm and optim.grad_clip_norm > 0:
    chain.insert(0, optax.clip_by_global_norm(optim.grad_clip_norm))
  return optax.chain(*chain), schedule
