"""Optimizers and learning-rate schedules (BERT defaults: AdamW, warmup, linear decay)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ('adamw', 'lamb')
SCHEDULES = ('linear', 'cosine', 'constant')


def learning_rate_schedule(optim: Any, total_steps: int | jax.Array
                           ) -> optax.Schedule:
  """Linear warmup to optim.learning_rate, then linear/cosine decay to 0.

  TOTAL_STEPS may be a traced scalar: the trainer passes it to the jitted
  step as an argument, so that the step's program (and its entry in the
  persistent compilation cache) does not change with ``train.num_steps``.
  The numbers are those of optax's ``join_schedules`` of a
  ``linear_schedule`` warmup and a ``linear_schedule`` or
  ``cosine_decay_schedule`` decay, which take their horizon as a Python int.
  """
  lr, warmup = float(optim.learning_rate), int(optim.warmup_steps)
  if optim.schedule not in SCHEDULES:
    raise ValueError(f'optim.schedule={optim.schedule!r}; choose one of {SCHEDULES}.')
  # A Python int stays Python (no eager device ops); a traced one, jnp.
  static = isinstance(total_steps, int)
  if optim.get('warmup_fraction') and not warmup:
    fraction = float(optim.warmup_fraction)
    warmup = (int(round(fraction * total_steps)) if static
              else jnp.round(fraction * total_steps).astype(jnp.int32))
  if static:
    warmup = min(warmup, total_steps)
    decay_steps = max(total_steps - warmup, 1)
  else:
    warmup = jnp.minimum(warmup, total_steps)
    decay_steps = jnp.maximum(total_steps - warmup, 1)
  kind = optim.schedule

  def schedule(count):
    count = jnp.asarray(count)
    # Fraction of the decay done, in [0, 1] (float32).
    done = jnp.clip(count - warmup, 0, decay_steps) / decay_steps
    if kind == 'linear':
      decay = lr * (1.0 - done)
    elif kind == 'cosine':
      decay = lr * 0.5 * (1.0 + jnp.cos(jnp.pi * done))
    else:
      decay = jnp.full(done.shape, lr, done.dtype)
    warm = lr * jnp.clip(count, 0, warmup) / jnp.maximum(warmup, 1)
    return jnp.where(count < warmup, warm, decay)

  return schedule


def decay_mask(params: Any) -> Any:
  """True where weight decay applies: not on biases or norm parameters."""
  def keep(path, _):
    names = [getattr(p, 'key', str(p)) for p in path]
    leaf = names[-1]
    in_norm = any('norm' in str(n).lower() for n in names)
    return not (leaf == 'bias' or in_norm)
  return jax.tree_util.tree_map_with_path(keep, params)


def lamb(learning_rate: optax.ScalarOrSchedule, b1: float, b2: float,
         eps: float, weight_decay: float, mask: Any
         ) -> optax.GradientTransformation:
  """LAMB whose layer-wise trust ratio skips what weight decay skips.

  ``optax.lamb`` scales every parameter's step by its trust ratio. The
  original LAMB (``exclude_from_layer_adaptation``, which defaults to the
  weight-decay exclusions) and NVIDIA's (apex ``FusedLAMB`` without
  ``use_nvlamb``) leave biases and LayerNorm parameters at the plain Adam
  step: their norms say little about a good step size (a bias starts at 0).
  """
  return optax.chain(
      optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
      optax.add_decayed_weights(weight_decay, mask),
      optax.masked(optax.scale_by_trust_ratio(), mask),
      optax.scale_by_learning_rate(learning_rate))


def make_optimizer(optim: Any, total_steps: int | jax.Array
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """Clip by global norm, then AdamW or LAMB with the schedule.

  TOTAL_STEPS may be traced (see ``learning_rate_schedule``); the optimizer
  state's structure does not depend on it.
  """
  if optim.name not in OPTIMIZERS:
    raise ValueError(f'optim.name={optim.name!r}; choose one of {OPTIMIZERS}.')
  schedule = learning_rate_schedule(optim, total_steps)
  kw = dict(learning_rate=schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
            weight_decay=optim.weight_decay, mask=decay_mask)
  core = optax.adamw(**kw) if optim.name == 'adamw' else lamb(**kw)
  chain = [core]
  if optim.grad_clip_norm and optim.grad_clip_norm > 0:
    chain.insert(0, optax.clip_by_global_norm(optim.grad_clip_norm))
  return optax.chain(*chain), schedule
