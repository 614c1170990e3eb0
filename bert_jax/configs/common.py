"""Config pieces shared by pretrain.py and finetune.py: argument parsing and
the groups every run has (model, optim, train, mesh, ckpt)."""

from __future__ import annotations

import ml_collections

from bert_jax.models.config import SIZES, config_for_size


def parse_arg(arg: str | None, known: dict[str, tuple[str, ...] | None]) -> dict[str, str | bool]:
  """'size=tiny,objective=mlm,runlocal' -> dict; unknown keys/values fail loudly.

  ``known`` maps each key to its valid values (None = any value; () = a flag).
  """
  out: dict[str, str | bool] = {}
  for part in filter(None, (arg or '').split(',')):
    key, _, value = part.partition('=')
    key = key.strip()
    if key not in known:
      raise ValueError(f'Unknown config argument {key!r}; valid: {sorted(known)}.')
    choices = known[key]
    if choices == ():
      if value:
        raise ValueError(f'Config argument {key!r} is a flag and takes no value.')
      out[key] = True
      continue
    if choices is not None and value not in choices:
      raise ValueError(f'Config argument {key}={value!r}; choose one of {choices}.')
    out[key] = value
  return out


def model_group(size: str) -> ml_collections.ConfigDict:
  """Every ModelConfig field, sized by the size table; vocab_size -1 = from tokenizer."""
  d = config_for_size(size).to_dict()
  d['vocab_size'] = -1
  # Compute dtype: 'auto' = bfloat16 on GPU/TPU, float32 on CPU. Parameters
  # are stored in param_dtype (float32) whatever this is.
  d['dtype'] = 'auto'
  return ml_collections.ConfigDict(d)


SIZE_NAMES = tuple(SIZES)


def mesh_group() -> ml_collections.ConfigDict:
  # Sizes of the (data, fsdp, tensor) mesh; -1 = all remaining devices.
  # num_slices: TPU slices (or GPU hosts) joined by the data-centre network;
  # data parallelism spans them, fsdp and tensor stay within one (hybrid
  # mesh). -1 = the slices the devices report (slice_index).
  return ml_collections.ConfigDict({'data': -1, 'fsdp': 1, 'tensor': 1,
                                    'num_slices': -1})


def ckpt_group() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({
      'every_steps': 1000,   # Save every N steps (and always at the end).
      'keep': 3,             # Keep the K most recent checkpoints.
      'async_save': True,    # Write in the background while training goes on.
  })


def failure_fields() -> dict[str, object]:
  """``config.train`` fields for when things go wrong (docs/reliability.md)."""
  return {
      # On a non-finite loss: 'stop' the run, naming the step and the last good
      # checkpoint, or 'skip' that update (params and optimizer state kept;
      # counted as skipped_steps / skipped_total in metrics.jsonl).
      'nan_policy': 'stop',
      'nan_max_skips': 10,   # With 'skip': stop after this many skips in a row.
      # Take WORKDIR/run.lock even if another run holds it (e.g. a run on
      # another host that died, which this host cannot check). Only when you
      # know that run is gone: two runs in one workdir corrupt it.
      'force_lock': False,
  }


def optim_group(**overrides) -> ml_collections.ConfigDict:
  d = {
      'name': 'adamw',          # adamw | lamb
      'learning_rate': 1e-4,    # Peak learning rate.
      'schedule': 'linear',     # linear | cosine | constant (after warmup)
      'warmup_steps': 10_000,   # Linear warmup from 0.
      'warmup_fraction': 0.0,   # Used when warmup_steps == 0: fraction of steps.
      'b1': 0.9,
      'b2': 0.999,
      'eps': 1e-6,
      'weight_decay': 0.01,     # Decoupled; never on biases or norm params.
      'grad_clip_norm': 1.0,    # Global-norm clipping; 0 = off.
  }
  d.update(overrides)
  return ml_collections.ConfigDict(d)
