"""The training loop, shared by pretraining and fine-tuning.

``run(config, workdir)`` builds the task from ``config.task``, then: mesh ->
sharded state (fresh, from ``init_from``, or resumed from the latest
checkpoint with its data position) -> loop of jitted steps, with metrics read
one step late so the host never waits on the device except at log, eval and
save steps.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from absl import logging

from bert_jax.data import loader as loader_lib
from bert_jax.train import checkpoint as ckpt_lib
from bert_jax.train import metrics_writer
from bert_jax.train import optim as optim_lib
from bert_jax.train import sharding
from bert_jax.train import step as step_lib


class _Preempted:
  """Set by SIGTERM: the loop saves a checkpoint and exits cleanly."""

  def __init__(self):
    self.flag = False
    self._previous = None

  def install(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # Not the main thread (e.g. some test runners).
      self._previous = None

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: saving a checkpoint and stopping.')
    self.flag = True

  def uninstall(self):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def any_process(self) -> bool:
    if jax.process_count() == 1:
      return self.flag
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return bool(np.any(multihost_utils.process_allgather(np.asarray(self.flag))))


def validate(config: Any, num_devices: int | None = None) -> None:
  """Checks values no type system catches, before anything compiles."""
  num_devices = num_devices or jax.device_count()
  mesh_shape = sharding.mesh_shape(config.mesh, num_devices)
  dp = mesh_shape[0] * mesh_shape[1]
  t = config.train
  if t.global_batch_size % dp:
    raise ValueError(
        f'train.global_batch_size={t.global_batch_size} is not divisible by the '
        f'data-parallel size {dp} (mesh.data x mesh.fsdp = {mesh_shape[0]} x '
        f'{mesh_shape[1]}).')
  if t.global_batch_size % jax.process_count():
    raise ValueError(f'train.global_batch_size={t.global_batch_size} is not '
                     f'divisible by the {jax.process_count()} processes.')
  if t.grad_accum_steps < 1 or (t.global_batch_size // dp) % t.grad_accum_steps:
    raise ValueError(
        f'train.grad_accum_steps={t.grad_accum_steps} must be >= 1 and divide '
        f'the per-replica batch {t.global_batch_size // dp}.')
  if config.data.max_seq_length > config.model.max_position_embeddings and \
      config.model.position_embedding == 'learned':
    raise ValueError(
        f'data.max_seq_length={config.data.max_seq_length} exceeds '
        f'model.max_position_embeddings={config.model.max_position_embeddings}.')
  if t.num_steps < 1:
    raise ValueError(f'train.num_steps must be >= 1, got {t.num_steps}.')
  optim_lib.make_optimizer(config.optim, t.num_steps)  # checks names/choices


def _mean(records: list[dict[str, float]]) -> dict[str, float]:
  return {k: float(np.mean([r[k] for r in records])) for k in records[0]}


def evaluate(eval_step, params, examples, config, mesh, base_rng) -> dict[str, float]:
  """Exact averages over the held-out examples (or train.eval_batches of them)."""
  n = len(examples['input_ids'])
  dp = sharding.data_parallel_size(mesh)
  batch = min(config.train.global_batch_size, (n // dp) * dp)
  if batch == 0:
    return {}
  it = loader_lib.make_loader(
      examples, global_batch_size=batch, seed=0, shuffle=False, num_epochs=1,
      process_index=jax.process_index(), process_count=jax.process_count())
  sums, norms = None, None
  for i, host_batch in enumerate(it):
    if config.train.eval_batches and i >= config.train.eval_batches:
      break
    s, z = eval_step(params, sharding.shard_batch(host_batch, mesh),
                     jax.random.fold_in(base_rng, i))
    s, z = jax.device_get((s, z))
    sums = s if sums is None else jax.tree.map(np.add, sums, s)
    norms = z if norms is None else jax.tree.map(np.add, norms, z)
  return {k: float(sums[k] / max(norms[k], 1.0)) for k in sums}


def run(config: Any, workdir: str) -> dict[str, Any]:
  """Trains as ``config`` says, in ``workdir``; returns the final metrics."""
  if config.task != 'pretraining':
    raise ValueError(f'config.task={config.task!r}; choose one of (\'pretraining\',).')
  from bert_jax.tasks import pretraining  # pylint: disable=g-import-not-at-top
  validate(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json(indent=2, sort_keys=True))
  setup = pretraining.setup(config, workdir)
  return train_loop(config, workdir, setup)


def train_loop(config: Any, workdir: str, setup: Any) -> dict[str, Any]:
  """The loop over a prepared setup (task, data, initial params)."""
  task, inputs = setup.task, setup.inputs
  t = config.train
  mesh = sharding.make_mesh(config.mesh)
  rules = sharding.rules_from_config(config.logical_axis_rules)
  tx, schedule = optim_lib.make_optimizer(config.optim, t.num_steps)
  base_rng = jax.random.key(config.seed)
  init_rng, train_rng, eval_rng = jax.random.split(base_rng, 3)
  writer = metrics_writer.MetricsWriter(workdir)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state, shardings = step_lib.init_state(task, tx, mesh, rules, init_rng,
                                           setup.init_params)
    abstract = jax.eval_shape(lambda: state)
    ckpt = ckpt_lib.Checkpointer(workdir, every_steps=config.ckpt.every_steps,
                                 keep=config.ckpt.keep,
                                 async_save=config.ckpt.async_save)
    it = loader_lib.make_loader(
        inputs.train, global_batch_size=t.global_batch_size,
        seed=config.seed, shuffle=True, process_index=jax.process_index(),
        process_count=jax.process_count(), worker_count=config.data.worker_count)
    start = ckpt.latest_step()
    if start is not None:
      state, meta = ckpt.restore(start, abstract, shardings, it)
      metrics_writer.log_line(f'Resumed from step {start} ({ckpt.directory}).')
      del meta
    start = start or 0
    train_step, eval_step = step_lib.jit_steps(
        task, tx, schedule, mesh, rules, shardings, t.grad_accum_steps)
    last = t.num_steps
    stop_at = min(last, start + t.stop_after_steps) if t.stop_after_steps else last
    progress = metrics_writer.Progress(last, start)
    preempted = _Preempted()
    preempted.install()
    pending, window, tokens = None, [], 0.0
    final_eval: dict[str, float] = {}
    t_compile = time.perf_counter()
    step = start
    try:
      while step < stop_at:
        host_batch = next(it)
        tokens += float(np.sum(host_batch['attention_mask'] > 0)) * jax.process_count()
        state, metrics = train_step(state, sharding.shard_batch(host_batch, mesh),
                                    train_rng)
        step += 1
        if pending is not None:  # Step t-1's metrics, read while step t runs.
          window.append(_check_finite(*pending, ckpt))
        pending = (step, metrics)
        if step == start + 1:
          jax.block_until_ready(metrics)
          metrics_writer.log_line(
              f'First step (compile + run) took {time.perf_counter() - t_compile:.1f}s.')
          progress.rates(step, 0.0)
          tokens = 0.0
        is_log = step % t.log_every_steps == 0 or step == stop_at
        is_eval = inputs.eval is not None and (
            (t.eval_every_steps and step % t.eval_every_steps == 0) or step == last)
        stop = preempted.any_process() if (is_log or jax.process_count() == 1) else False
        is_save = ckpt.should_save(step, last) or stop or step == stop_at
        if is_log or is_save or is_eval:
          window.append(_check_finite(*pending, ckpt))
          pending = None
        if is_log and window:
          m = _mean(window)
          sps, tps = progress.rates(step, tokens)
          m.update(steps_per_sec=sps, tokens_per_sec=tps)
          writer.write(step, 'train', m)
          metrics_writer.log_line(progress.line(step, m['loss'], sps, tps))
          window, tokens = [], 0.0
        if is_eval:
          final_eval = evaluate(eval_step, state.params, inputs.eval, config,
                                mesh, eval_rng)
          writer.write(step, 'eval', final_eval)
          metrics_writer.log_line(f'eval step {step}: ' + ', '.join(
              f'{k} {v:.4f}' for k, v in sorted(final_eval.items())))
        if is_save:
          ckpt.save(step, state, {'step': step}, it)
        if stop:
          metrics_writer.log_line(f'Stopped by SIGTERM at step {step}; checkpoint saved.')
          break
    finally:
      preempted.uninstall()
      ckpt.close()
      writer.close()
  result = {'step': step, 'eval': final_eval, 'stats': inputs.stats}
  if jax.process_index() == 0 and final_eval:
    with open(os.path.join(workdir, 'eval_results.json'), 'w') as f:
      json.dump(result, f, indent=2, sort_keys=True)
  result['state'] = state
  return result


def _check_finite(step: int, metrics: Any, ckpt: ckpt_lib.Checkpointer) -> dict[str, float]:
  values = {k: float(v) for k, v in jax.device_get(metrics).items()}
  if not math.isfinite(values['loss']):
    ckpt.wait()
    raise FloatingPointError(
        f'Loss is {values["loss"]} at step {step}; stopping. The last good '
        f'checkpoint is step {ckpt.latest_step()} in {ckpt.directory}.')
  return values
