"""The training loop, shared by pretraining and fine-tuning.

``run(config, workdir)`` builds the task from ``config.task``, then: mesh ->
sharded state (fresh, from ``init_from``, or resumed from the latest
checkpoint with its data position) -> loop of jitted steps, with metrics read
one step late so the host never waits on the device except at log, eval and
save steps.
"""

from __future__ import annotations

import dataclasses
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
from bert_jax.tasks.finetune_base import FinetuneTask
from bert_jax.train import checkpoint as ckpt_lib
from bert_jax.train import evaluation
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
  if config.task == 'pretraining' and t.num_steps < 1:
    raise ValueError(f'train.num_steps must be >= 1, got {t.num_steps}.')
  optim_lib.make_optimizer(config.optim, max(t.num_steps, 1))  # checks choices


def _mean(records: list[dict[str, float]]) -> dict[str, float]:
  return {k: float(np.mean([r[k] for r in records])) for k in records[0]}


def run(config: Any, workdir: str) -> dict[str, Any]:
  """Trains (or evaluates) as ``config`` says, in ``workdir``; returns metrics."""
  from bert_jax.tasks import registry  # pylint: disable=g-import-not-at-top
  valid = ('pretraining',) + registry.FINETUNE_TASKS
  if config.task not in valid:
    raise ValueError(f'config.task={config.task!r}; choose one of {valid}.')
  validate(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'config.json'), 'w') as f:
      f.write(config.to_json(indent=2, sort_keys=True))
  if config.task == 'pretraining':
    from bert_jax.tasks import pretraining  # pylint: disable=g-import-not-at-top
    s = pretraining.setup(config, workdir)
    run_setup = _RunSetup(s.task, s.model_config, s.inputs.tokenizer,
                          s.init_params, s.inputs.train, s.inputs.eval,
                          s.inputs.stats, config.train.num_steps,
                          config.train.eval_every_steps)
  else:
    from bert_jax.tasks import finetune_setup  # pylint: disable=g-import-not-at-top
    s = finetune_setup.setup(config, workdir)
    run_setup = _RunSetup(s.task, s.model_config, s.tokenizer, s.init_params,
                          None if config.eval_only else s.task.train_features(),
                          None, {}, s.num_steps,
                          config.train.eval_every_steps or s.steps_per_epoch)
  return train_loop(config, workdir, run_setup)


@dataclasses.dataclass
class _RunSetup:
  task: Any
  model_config: Any
  tokenizer: Any
  init_params: Any
  train: Any                       # features (or grain source) for the loader
  eval: Any                        # pretraining: held-out examples; else None
  stats: dict[str, Any]
  num_steps: int
  eval_every: int


class _Evaluator:
  """Runs evaluation, writes metrics, and keeps the best fine-tuned params."""

  def __init__(self, config, workdir, setup: _RunSetup, mesh, eval_step,
               predict, eval_rng, writer):
    self.config, self.workdir, self.setup = config, workdir, setup
    self.mesh, self.eval_step, self.predict = mesh, eval_step, predict
    self.eval_rng, self.writer = eval_rng, writer
    self.finetune = isinstance(setup.task, FinetuneTask)
    self.best: float | None = None
    self.best_step: int | None = None

  @property
  def enabled(self) -> bool:
    return self.finetune or self.setup.eval is not None

  def __call__(self, step: int, params: Any, final: bool) -> dict[str, Any]:
    if not self.finetune:
      m = evaluation.evaluate_sums(self.eval_step, params, self.setup.eval,
                                   self.config, self.mesh, self.eval_rng)
      if not m:
        return m
      self.writer.write(step, 'eval', m)
      metrics_writer.log_line(f'eval step {step}: ' + ', '.join(
          f'{k} {v:.4f}' for k, v in sorted(m.items())))
      return m
    task = self.setup.task
    by_split, outputs = evaluation.evaluate_task(task, self.predict, params,
                                                 self.config, self.mesh)
    for split, m in by_split.items():
      self.writer.write(step, 'eval', {'eval_split': split, **m})
      metrics_writer.log_line(f'eval step {step} [{split}]: ' + ', '.join(
          f'{k} {v:.4f}' for k, v in sorted(m.items())))
    first = next(iter(by_split.values()))
    main = first.get(task.main_metric)
    better = main is not None and (self.best is None or (
        main > self.best if task.main_metric_mode == 'max' else main < self.best))
    save_best = better and not self.config.eval_only
    # Every process takes part in gathering sharded params; process 0 writes.
    host_params = evaluation.to_host(params) if save_best else None
    if jax.process_index() == 0:
      if final or better:
        pred_dir = os.path.join(self.workdir, 'predictions')
        for split, out in outputs.items():
          task.write_predictions(split, out, pred_dir)
    if save_best:
      self._save_best(host_params, outputs)
    if better:
      self.best, self.best_step = main, step
    return {'splits': by_split, 'best': {task.main_metric: self.best,
                                         'step': self.best_step}}

  def _save_best(self, params, outputs) -> None:
    from bert_jax.tasks import finetune_setup  # pylint: disable=g-import-not-at-top
    from bert_jax.train import pretrained  # pylint: disable=g-import-not-at-top
    best_dir = os.path.join(self.workdir, 'best')
    pretrained.save_pretrained(best_dir, params,
                               self.setup.model_config, self.setup.tokenizer)
    if jax.process_index() != 0:
      return
    task = self.setup.task
    with open(os.path.join(best_dir, finetune_setup.TASK_METADATA), 'w') as f:
      json.dump(task.metadata(), f, indent=2, sort_keys=True)
    for split, out in outputs.items():
      task.write_predictions(split, out, os.path.join(best_dir, 'predictions'))


def train_loop(config: Any, workdir: str, setup: _RunSetup) -> dict[str, Any]:
  """The loop over a prepared setup (task, data, initial params)."""
  task = setup.task
  t = config.train
  mesh = sharding.make_mesh(config.mesh)
  rules = sharding.rules_from_config(config.logical_axis_rules)
  last = setup.num_steps
  tx, schedule = optim_lib.make_optimizer(config.optim, last)
  base_rng = jax.random.key(config.seed)
  init_rng, train_rng, eval_rng = jax.random.split(base_rng, 3)
  writer = metrics_writer.MetricsWriter(workdir)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state, shardings = step_lib.init_state(task, tx, mesh, rules, init_rng,
                                           setup.init_params)
    train_step, eval_step = step_lib.jit_steps(
        task, tx, schedule, mesh, rules, shardings, t.grad_accum_steps)
    predict = None
    if isinstance(task, FinetuneTask):
      predict = jax.jit(task.predict, in_shardings=(
          shardings.params, sharding.batch_sharding(mesh)))
    evaluator = _Evaluator(config, workdir, setup, mesh, eval_step, predict,
                           eval_rng, writer)
    if config.get('eval_only', False):
      result = {'step': 0, 'eval': evaluator(0, state.params, final=True)}
      writer.close()
      _write_results(workdir, result)
      return result
    abstract = jax.eval_shape(lambda: state)
    ckpt = ckpt_lib.Checkpointer(workdir, every_steps=config.ckpt.every_steps,
                                 keep=config.ckpt.keep,
                                 async_save=config.ckpt.async_save)
    it = loader_lib.make_loader(
        setup.train, global_batch_size=t.global_batch_size,
        seed=config.seed, shuffle=True, process_index=jax.process_index(),
        process_count=jax.process_count(),
        worker_count=config.data.get('worker_count', 0))
    start = ckpt.latest_step()
    if start is not None:
      state, _ = ckpt.restore(start, abstract, shardings, it)
      metrics_writer.log_line(f'Resumed from step {start} ({ckpt.directory}).')
    start = start or 0
    stop_at = min(last, start + t.stop_after_steps) if t.stop_after_steps else last
    progress = metrics_writer.Progress(last, start)
    preempted = _Preempted()
    preempted.install()
    pending, window, tokens = None, [], 0.0
    final_eval: dict[str, Any] = {}
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
        is_eval = evaluator.enabled and (
            (setup.eval_every and step % setup.eval_every == 0) or step == last)
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
          final_eval = evaluator(step, state.params, final=step == last)
        if is_save:
          ckpt.save(step, state, {'step': step}, it)
        if stop:
          metrics_writer.log_line(f'Stopped by SIGTERM at step {step}; checkpoint saved.')
          break
    finally:
      preempted.uninstall()
      ckpt.close()
      writer.close()
  result = {'step': step, 'eval': final_eval, 'stats': setup.stats}
  if final_eval:
    _write_results(workdir, result)
  result['state'] = state
  return result


def _write_results(workdir: str, result: dict[str, Any]) -> None:
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'eval_results.json'), 'w') as f:
      json.dump(result, f, indent=2, sort_keys=True, default=float)


def _check_finite(step: int, metrics: Any, ckpt: ckpt_lib.Checkpointer) -> dict[str, float]:
  values = {k: float(v) for k, v in jax.device_get(metrics).items()}
  if not math.isfinite(values['loss']):
    ckpt.wait()
    raise FloatingPointError(
        f'Loss is {values["loss"]} at step {step}; stopping. The last good '
        f'checkpoint is step {ckpt.latest_step()} in {ckpt.directory}.')
  return values
