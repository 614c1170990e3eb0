"""The training loop, shared by pretraining and fine-tuning.

``run(config, workdir)``: validate -> take ``WORKDIR/run.lock`` ->
``setup.build`` (tokenizer, model config, task, initial params) ->
``build_run`` (mesh, sharded state, jitted steps, loader, checkpointer,
evaluator; resumed from the newest good checkpoint with its data position) ->
``train_loop``. Metrics are read one step late so the host never waits on
the device except at log, eval and save steps.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from bert_jax import storage
from bert_jax.data import length_buckets
from bert_jax.data import loader as loader_lib
from bert_jax.errors import UserInputError
from bert_jax.tasks import registry
from bert_jax.train import checkpoint as ckpt_lib
from bert_jax.train import evaluators
from bert_jax.train import metrics_writer
from bert_jax.train import nan_guard
from bert_jax.train import optim as optim_lib
from bert_jax.train import precompile
from bert_jax.train import setup as setup_lib
from bert_jax.train import sharding
from bert_jax.train import step as step_lib
from bert_jax.train import throughput
from bert_jax.train import workdir_lock
from bert_jax.train.preemption import Preempted


def validate(config: Any, num_devices: int | None = None) -> None:
  """Checks values no type system catches, before anything is read or compiled.

  Raises:
    UserInputError: Naming the config field and what it should be.
  """
  try:
    _check_config(config, num_devices)
  except UserInputError:
    raise
  except ValueError as e:
    # Every check below is about a config value (the messages name the
    # field), so its ValueError is the user's to fix: no traceback.
    raise UserInputError(str(e)) from e


def _check_config(config: Any, num_devices: int | None) -> None:
  registry.get(config.task)
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
  # The model config's own checks (choices, position limit), vocabulary aside.
  setup_lib.resolve_model_config(config, vocab_size=1)
  if 'num_epochs' not in t and t.num_steps < 1:
    raise ValueError(f'train.num_steps must be >= 1, got {t.num_steps}.')
  optim_lib.make_optimizer(config.optim, max(t.num_steps, 1))  # checks choices
  length_buckets.parse(config.data.get('length_buckets', ''),
                       config.data.max_seq_length)
  if int(config.data.get('length_group_batches', 0)) < 0:
    raise ValueError('data.length_group_batches must be >= 0 (0 = plain '
                     f'shuffle), got {config.data.length_group_batches}.')
  nan_guard.check_config(t)


@dataclasses.dataclass
class Run:
  """Everything the loop touches, built by ``build_run``."""
  config: Any
  workdir: str
  task: Any
  model_config: Any
  tokenizer: Any
  mesh: Any
  state: Any
  train_step: Any
  eval_step: Any
  predict: Any
  train_rng: Any
  eval_rng: Any
  writer: metrics_writer.MetricsWriter
  num_steps: int
  eval_every: int
  stats: dict[str, Any]
  evaluator: Any = None
  ckpt: ckpt_lib.Checkpointer | None = None
  loader: Any = None
  start: int = 0
  # Token-axis lengths batches are cut to (None: full max_seq_length rows).
  length_buckets: tuple[int, ...] | None = None


def run(config: Any, workdir: str) -> dict[str, Any]:
  """Trains (or evaluates) as ``config`` says, in ``workdir``; returns metrics."""
  validate(config)
  workdir = storage.absolute(workdir)  # A local path or gs://... (any epath URI).
  storage.makedirs(workdir)
  # Before anything is written: one run per workdir (docs/reliability.md).
  with workdir_lock.hold(workdir, force=config.train.get('force_lock', False)):
    return _run_locked(config, workdir)


def _run_locked(config: Any, workdir: str) -> dict[str, Any]:
  s = setup_lib.build(config, workdir)
  mesh = sharding.make_mesh(config.mesh)
  rules = sharding.rules_from_config(config.logical_axis_rules)
  if jax.process_index() == 0:
    _write_config(config, workdir, rules)
  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    r = build_run(config, workdir, s, mesh, rules)
    if config.get('eval_only', False):
      result = {'step': 0, 'eval': r.evaluator(0, r.state.params, final=True),
                'eval_shapes': _eval_shapes(s.task)}
      r.writer.close()
      _write_results(workdir, result)
      return result
    return train_loop(r)


def _eval_shapes(task: Any) -> dict[str, list[int]]:
  """[examples, length] of each evaluation split's input_ids: what an
  evaluation at another length than training's really ran on."""
  out = {}
  for split, feats in task.eval_features().items():
    ids = feats.get('input_ids') if isinstance(feats, dict) else None
    if ids is not None and np.ndim(ids) == 2:
      out[split] = [int(n) for n in np.shape(ids)]
  return out


def _write_config(config: Any, workdir: str, rules) -> None:
  d = json.loads(config.to_json())
  d['logical_axis_rules'] = [list(r) for r in rules]  # The rules in force.
  storage.write_text(os.path.join(workdir, 'config.json'),
                     json.dumps(d, indent=2, sort_keys=True))


def build_run(config: Any, workdir: str, s: setup_lib.RunSetup, mesh, rules
              ) -> Run:
  """Mesh-bound pieces: state, steps, evaluator, checkpointer, loader."""
  tx, schedule = optim_lib.make_optimizer(config.optim, s.num_steps)
  init_rng, train_rng, eval_rng = jax.random.split(jax.random.key(config.seed), 3)
  # Placed as the train step takes it: a program compiled ahead checks it.
  train_rng = jax.device_put(train_rng, sharding.replicated(mesh))
  state, shardings = step_lib.init_state(s.task, tx, mesh, rules, init_rng,
                                         s.init_params)
  # The number of steps is an argument of the step: changing only
  # train.num_steps reuses the persistent compilation cache's program.
  train_step, eval_step = step_lib.jit_steps(
      s.task, tx, schedule, mesh, rules, shardings, config.train.grad_accum_steps,
      skip_nonfinite=config.train.get('nan_policy', 'stop') == 'skip',
      optimizer_for=functools.partial(optim_lib.make_optimizer, config.optim),
      total_steps=s.num_steps)
  predict = None
  if s.task.eval_kind == 'predictions':
    predict = jax.jit(s.task.predict, in_shardings=(
        shardings.params, sharding.batch_sharding(mesh)))
  r = Run(config, workdir, s.task, s.model_config, s.tokenizer, mesh, state,
          train_step, eval_step, predict, train_rng, eval_rng,
          metrics_writer.MetricsWriter(workdir), s.num_steps, s.eval_every,
          s.stats)
  if s.task.length_axes():
    r.length_buckets = length_buckets.parse(
        config.data.get('length_buckets', ''), config.data.max_seq_length)
  if r.length_buckets:
    metrics_writer.log_line(
        f'Length buckets {list(r.length_buckets)}: each batch is cut to the '
        'shortest that fits its longest row (one compile per bucket used).')
  r.evaluator = evaluators.make_evaluator(r)
  if config.get('eval_only', False):
    return r
  r.ckpt = ckpt_lib.Checkpointer(workdir, every_steps=config.ckpt.every_steps,
                                 keep=config.ckpt.keep,
                                 async_save=config.ckpt.async_save)
  if getattr(r.evaluator, 'best_writer', None) is not None:
    r.evaluator.best_writer.before_write = r.ckpt.wait  # One orbax write at a time.
  train_features = s.task.train_features()
  trimmer, order = length_buckets.for_training(
      train_features, r.length_buckets, s.task.length_axes(),
      config.train.global_batch_size, config.seed,
      int(config.data.get('length_group_batches', 0)))
  r.loader = loader_lib.make_loader(
      train_features, global_batch_size=config.train.global_batch_size,
      seed=config.seed, shuffle=True, process_index=jax.process_index(),
      process_count=jax.process_count(),
      worker_count=config.data.get('worker_count', 0), trimmer=trimmer,
      batch_order=order)
  # The newest good checkpoint: broken ones are moved aside, with a warning.
  restored = r.ckpt.restore_latest(jax.eval_shape(lambda: state), shardings,
                                   r.loader)
  if restored is not None:
    r.start, r.state, metadata = restored
    r.evaluator.restore(metadata)  # The best score so far (fine-tuning).
    metrics_writer.log_line(f'Resumed from step {r.start} ({r.ckpt.directory}).')
  # Records after the restored step are recomputed: drop them (and any line
  # half written by a killed run), so each (step, split) appears once.
  r.writer.rewind(r.start)
  threads = int(config.train.get('precompile_threads', 0))
  if trimmer is not None and threads > 0 and isinstance(train_features, dict):
    widths = precompile.widths_in_order(order, trimmer, r.start, r.num_steps,
                                        r.length_buckets, trimmer.lengths_N)
    r.train_step = precompile.BucketPrograms(
        r.train_step, r.state, r.train_rng, train_features,
        s.task.length_axes(), config.train.global_batch_size, widths, mesh,
        rules, workers=threads)
    metrics_writer.log_line(
        f'Train step: compiling lengths {widths} ahead, {threads} at a time, '
        'in the background.')
  if threads > 0 and r.predict is not None and r.evaluator.enabled:
    compiler = getattr(r.train_step, 'compiler', None) or precompile.Compiler(
        mesh, rules, threads)
    r.predict, widths = precompile.prediction_programs(
        r.predict, r.state.params, s.task.eval_features(),
        config.train.global_batch_size, r.length_buckets,
        s.task.length_axes(), compiler)
    metrics_writer.log_line(
        f'Predict: compiling {len(r.predict)} program(s) ahead (lengths '
        f'{[w or config.data.max_seq_length for w in widths]}), after the '
        'train step\'s.')
  return r


class _Meter:
  """Train metrics read one step late, averaged over a log window."""

  def __init__(self, guard: nan_guard.NanGuard, progress, writer,
               counts: throughput.Window):
    self.guard, self.progress, self.writer = guard, progress, writer
    self.counts = counts
    self.pending, self.window = None, []

  def add(self, step: int, metrics: Any, host_batch: dict[str, np.ndarray]):
    self.counts.add(host_batch['attention_mask'])
    self.flush()  # Step t-1's metrics, read while step t runs.
    self.pending = (step, metrics)

  def flush(self) -> None:
    if self.pending is not None:
      values = self.guard.check(*self.pending)  # None: a skipped update.
      if values is not None:
        self.window.append(values)
      self.pending = None

  def first_step(self, metrics: Any, t0: float) -> None:
    jax.block_until_ready(metrics)
    metrics_writer.log_line(
        f'First step (compile + run) took {time.perf_counter() - t0:.1f}s.')
    self.progress.rates(self.pending[0], 0.0)
    self.counts.metrics(0.0)  # The compile step's tokens are no rate.

  def log(self, step: int) -> None:
    m = {k: float(np.mean([w[k] for w in self.window])) for k in self.window[0]
         } if self.window else {}
    sps, tps = self.progress.rates(step, self.counts.tokens)
    m.update(steps_per_sec=sps, tokens_per_sec=tps, **self.counts.metrics(tps),
             **self.guard.counts())
    self.writer.write(step, 'train', m)
    if 'loss' in m:  # Not when every update since the last log was skipped.
      metrics_writer.log_line(self.progress.line(step, m))
    self.window = []


def train_loop(r: Run) -> dict[str, Any]:
  """The loop over a built run: step, log, evaluate, save, stop on SIGTERM."""
  t, last, step = r.config.train, r.num_steps, r.start
  stop_at = min(last, step + t.stop_after_steps) if t.stop_after_steps else last
  peak = t.get('peak_tflops', 0.0)
  # Each batch's FLOPs at its own length (a length bucket's in fine-tuning).
  counts = throughput.Window(throughput.flops_per_token(
      r.state.params, r.model_config) if peak > 0 else None, peak)
  meter = _Meter(nan_guard.NanGuard(t, r.ckpt),
                 metrics_writer.Progress(last, step), r.writer, counts)
  final_eval: dict[str, Any] = {}
  lengths_seen: set[int] = set()  # One compile of the train step each.
  metrics_writer.log_line(f'Training steps {step + 1}-{stop_at} of {last}.')
  t0 = time.perf_counter()
  with Preempted() as preempted:
    try:
      while step < stop_at:
        host_batch = next(r.loader)
        if r.length_buckets:
          _note_length(host_batch, lengths_seen, r.length_buckets)
        r.state, metrics = r.train_step(
            r.state, sharding.shard_batch(host_batch, r.mesh), r.train_rng)
        step += 1
        meter.add(step, metrics, host_batch)
        if step == r.start + 1:
          meter.first_step(metrics, t0)
        is_log = step % t.log_every_steps == 0 or step == stop_at
        is_eval = r.evaluator.enabled and (
            (r.eval_every and step % r.eval_every == 0) or step == last)
        # A collective with several processes: only at log steps then.
        stop = preempted.any_process() if (is_log or jax.process_count() == 1) else False
        is_save = r.ckpt.should_save(step, last) or stop or step == stop_at
        if is_log or is_save or is_eval:
          meter.flush()
        if is_log and (meter.window or meter.guard.skip):
          meter.log(step)
        if is_eval:
          final_eval = r.evaluator(step, r.state.params, final=step == last)
          if step == last:  # Before the final save: a kill after it loses nothing.
            r.evaluator.wait()  # The best checkpoint it names is on disk.
            _write_results(r.workdir, _result(r, step, final_eval, lengths_seen))
        if is_save:
          # One orbax write at a time (best_writer.py).
          r.evaluator.wait()
          r.ckpt.save(step, r.state, {'step': step, **r.evaluator.metadata()},
                      r.loader)
          r.writer.sync()  # Remote workdir: metrics up to here are uploaded.
        if stop:
          metrics_writer.log_line(f'Stopped by SIGTERM at step {step}; checkpoint saved.')
          break
    finally:
      for programs in (r.train_step, r.predict):
        if isinstance(programs, precompile.AheadPrograms):
          programs.close()
      r.evaluator.close()  # The best checkpoint is on disk before results.
      r.ckpt.close()
      r.writer.close()
  result = _result(r, step, final_eval, lengths_seen)
  if final_eval and step != last:  # Stopped early: its last evaluation.
    _write_results(r.workdir, result)
  result['state'] = r.state
  return result


def _result(r: Run, step: int, final_eval: dict[str, Any],
            lengths_seen: set[int]) -> dict[str, Any]:
  result = {'step': step, 'eval': final_eval, 'stats': r.stats}
  if r.length_buckets:
    # The lengths are this launch's compilations (a resumed run's differ).
    result['length_buckets'] = {
        'buckets': list(r.length_buckets),
        'train_lengths': sorted(lengths_seen),
        'predict_lengths': sorted(getattr(r.evaluator, 'lengths_seen', ()))}
  return result


def _note_length(batch: dict[str, np.ndarray], seen: set[int],
                 buckets: tuple[int, ...]) -> None:
  length = int(batch['attention_mask'].shape[1])
  if length not in seen:
    seen.add(length)
    metrics_writer.log_line(
        f'Train step: first batch of length {length} ({len(seen)} of at most '
        f'{len(buckets)} buckets).')


def _write_results(workdir: str, result: dict[str, Any]) -> None:
  if jax.process_index() == 0:
    # Whole or not at all (storage.write_text): a sweep counts a trial as
    # finished when this file exists.
    storage.write_text(os.path.join(workdir, 'eval_results.json'),
                       json.dumps(result, indent=2, sort_keys=True,
                                  default=float))

