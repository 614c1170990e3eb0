"""Train state, sharded initialisation, and the jitted train and eval steps.

The step follows the flax lm1b / nanodo pattern: ``eval_shape`` -> logical
partition specs -> mesh shardings -> ``jax.jit(init, out_shardings=...)``;
the train step is jitted with explicit in/out shardings and donates the state.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from bert_jax.tasks.base import Task, combine
from bert_jax.train import sharding

Array = jax.Array


@flax.struct.dataclass
class TrainState:
  step: Array
  params: Any
  opt_state: Any


def _boxed_state(task: Task, tx: optax.GradientTransformation, rng: Array,
                 batch_size: int) -> TrainState:
  dummy = task.dummy_batch(batch_size)
  variables = task.model.init({'params': rng, 'dropout': rng}, dummy)
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params))


def state_shardings(task: Task, tx, mesh, rules, batch_size: int = 1):
  """(abstract unboxed state, NamedSharding tree) without allocating anything."""
  abstract = jax.eval_shape(
      lambda r: _boxed_state(task, tx, r, batch_size), jax.random.key(0))
  shardings = sharding.logical_shardings(mesh, abstract, rules)
  return strip_boxes(abstract), shardings


def strip_boxes(tree: Any) -> Any:
  """Unboxes logical-partitioning metadata without applying constraints."""
  return jax.tree.map(lambda x: x.value if isinstance(x, nn.Partitioned) else x,
                      tree, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def _path(p) -> str:
  return jax.tree_util.keystr(p, simple=True, separator='/')


def init_state(task: Task, tx, mesh, rules, rng: Array,
               init_params: dict[str, Any] | None = None
               ) -> tuple[TrainState, Any]:
  """Initialises the sharded train state, optionally from given params.

  INIT_PARAMS ({'/'-joined path: numpy array}, from ``setup.match_params``)
  replace the fresh leaves they name. They enter the jitted init as
  arguments, placed with the shardings of the leaves they replace, so XLA
  never holds them as constants (compile time and host memory would grow with
  the model).
  """
  _, shardings = state_shardings(task, tx, mesh, rules)
  init_params = dict(init_params or {})
  by_path = {_path(p): s for p, s in
             jax.tree_util.tree_flatten_with_path(shardings.params)[0]}
  loaded = {k: jax.make_array_from_callback(v.shape, by_path[k],
                                            lambda i, v=v: v[i])
            for k, v in init_params.items()}

  def init_fn(r, loaded):
    state = nn.meta.unbox(_boxed_state(task, tx, r, 1))
    if loaded:
      # Leaves the checkpoint lacks (e.g. a new head) keep their fresh init.
      params = jax.tree_util.tree_map_with_path(
          lambda p, x: loaded[_path(p)].astype(x.dtype)
          if _path(p) in loaded else x, state.params)
      state = state.replace(params=params, opt_state=tx.init(params))
    return state

  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    state = jax.jit(init_fn, out_shardings=shardings)(rng, loaded)
  return state, shardings


def _split_micro(batch: dict[str, Array], k: int) -> dict[str, Array]:
  # [B, ...] -> [k, B/k, ...] taking rows j*k + i for micro-batch i, so each
  # device's contiguous shard of rows stays on that device.
  def split(x):
    x = x.reshape((x.shape[0] // k, k) + x.shape[1:])
    return jnp.swapaxes(x, 0, 1)
  return jax.tree.map(split, batch)


def make_train_step(task: Task, tx: optax.GradientTransformation,
                    schedule: Callable[[Array], Array], grad_accum_steps: int,
                    skip_nonfinite: bool = False,
                    optimizer_for: Callable[[Array], tuple[Any, Any]] | None
                    = None) -> Callable[..., tuple[TrainState, dict[str, Array]]]:
  """train_step(state, batch, base_rng) -> (state, metrics).

  With SKIP_NONFINITE (``train.nan_policy=skip``) a step whose update is not
  finite keeps the old params and optimizer state and reports
  ``metrics['skipped'] = 1``; the step counter still advances.

  With OPTIMIZER_FOR (total_steps -> (tx, schedule), e.g.
  ``optim.make_optimizer`` bound to the config) the step is
  ``train_step(state, batch, base_rng, total_steps)`` and builds TX and
  SCHEDULE from that traced argument: the run's length is then an input of
  the program, not a constant in it (see ``jit_steps``).
  """
  if optimizer_for is not None:
    def train_step_until(state, batch, base_rng, total_steps):
      tx_t, schedule_t = optimizer_for(total_steps)
      return make_train_step(task, tx_t, schedule_t, grad_accum_steps,
                             skip_nonfinite)(state, batch, base_rng)
    return train_step_until

  def micro_loss(params, micro, rng, norms):
    sums = task.sums(params, micro, rng, True)
    loss = sum(sums[k] / jnp.maximum(norms[k], 1.0) for k in task.loss_keys)
    return loss, sums

  grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

  def train_step(state: TrainState, batch, base_rng):
    rng = jax.random.fold_in(base_rng, state.step)
    prep_rng, drop_rng = jax.random.split(rng)
    batch = task.prepare(batch, prep_rng, True)
    norms = task.normalizers(batch)
    if grad_accum_steps == 1:
      (_, sums), grads = grad_fn(state.params, batch, drop_rng, norms)
    else:
      micro = _split_micro(batch, grad_accum_steps)

      def body(carry, xs):
        g_acc, s_acc = carry
        mb, i = xs
        (_, s), g = grad_fn(state.params, mb, jax.random.fold_in(drop_rng, i),
                            norms)
        return (jax.tree.map(jnp.add, g_acc, g),
                jax.tree.map(jnp.add, s_acc, s)), None

      zeros_g = jax.tree.map(jnp.zeros_like, state.params)
      zeros_s = jax.eval_shape(
          lambda: grad_fn(state.params, jax.tree.map(lambda x: x[0], micro),
                          drop_rng, norms)[0][1])
      zeros_s = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), zeros_s)
      (grads, sums), _ = jax.lax.scan(
          body, (zeros_g, zeros_s), (micro, jnp.arange(grad_accum_steps)))
    _, metrics = combine(sums, norms, task.loss_keys)
    metrics['grad_norm'] = optax.tree.norm(grads)
    metrics['learning_rate'] = schedule(state.step)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params,
                              opt_state=opt_state)
    if skip_nonfinite:
      new_state, metrics['skipped'] = _drop_if_nonfinite(state, new_state,
                                                         metrics)
    return new_state, metrics

  return train_step


def _drop_if_nonfinite(old: TrainState, new: TrainState,
                       metrics: dict[str, Array]) -> tuple[TrainState, Array]:
  # The new params are checked too: a finite but huge update can overflow.
  ok = jnp.isfinite(metrics['loss']) & jnp.isfinite(metrics['grad_norm'])
  ok &= jax.tree.reduce(jnp.logical_and, jax.tree.map(
      lambda x: jnp.all(jnp.isfinite(x)), new.params), jnp.bool_(True))
  keep = lambda n, o: jnp.where(ok, n, o)
  # The optimizer state too: its step count (schedule, Adam's bias
  # correction) does not move for a dropped update, as optax.apply_if_finite.
  return new.replace(params=jax.tree.map(keep, new.params, old.params),
                     opt_state=jax.tree.map(keep, new.opt_state, old.opt_state)
                     ), (~ok).astype(jnp.float32)


def make_eval_step(task: Task) -> Callable[..., tuple[dict, dict]]:
  """eval_step(params, batch, rng) -> (sums, norms), to be summed on host."""

  def eval_step(params, batch, rng):
    batch = task.prepare(batch, rng, False)
    return task.sums(params, batch, rng, False), task.normalizers(batch)

  return eval_step


def jit_steps(task: Task, tx, schedule, mesh, rules, state_sh,
              grad_accum_steps: int = 1, skip_nonfinite: bool = False,
              optimizer_for: Callable[[Array], tuple[Any, Any]] | None = None,
              total_steps: int | None = None):
  """The jitted (train_step, eval_step) with explicit shardings.

  With OPTIMIZER_FOR and TOTAL_STEPS the train step takes the number of steps
  (the learning-rate schedule's horizon) as an argument, bound here
  (``StepsBound``): runs that differ only in ``train.num_steps`` lower to the
  same program and so share the persistent compilation cache's entry.
  """
  batch_sh = sharding.batch_sharding(mesh)
  repl = sharding.replicated(mesh)
  evaluate = jax.jit(make_eval_step(task),
                     in_shardings=(state_sh.params, batch_sh, repl),
                     out_shardings=(repl, repl))
  if optimizer_for is not None and total_steps is not None:
    jitted = jax.jit(make_train_step(task, tx, schedule, grad_accum_steps,
                                     skip_nonfinite, optimizer_for),
                     in_shardings=(state_sh, batch_sh, repl, repl),
                     out_shardings=(state_sh, repl), donate_argnums=0)
    total = jax.device_put(jnp.asarray(total_steps, jnp.int32), repl)
    return StepsBound(jitted, total), evaluate
  train = jax.jit(make_train_step(task, tx, schedule, grad_accum_steps,
                                  skip_nonfinite),
                  in_shardings=(state_sh, batch_sh, repl),
                  out_shardings=(state_sh, repl), donate_argnums=0)
  return train, evaluate


class StepsBound:
  """``train_step(state, batch, rng)`` of a jitted step that also takes the
  run's total steps: calls and ``lower``s it with TOTAL bound."""

  def __init__(self, jitted: Any, total: Array):
    self.jitted, self.total = jitted, total

  def __call__(self, state, batch, rng):
    return self.jitted(state, batch, rng, self.total)

  def lower(self, state, batch, rng):
    return _BoundLowered(self.jitted.lower(state, batch, rng, self.total),
                         self.total)


class _BoundLowered:
  """A lowered ``StepsBound``: its compiled program is called as the step."""

  def __init__(self, lowered: Any, total: Array):
    self.lowered, self.total = lowered, total

  def __getattr__(self, name: str) -> Any:  # as_text, cost_analysis, ...
    return getattr(self.lowered, name)

  def compile(self, *args, **kwargs) -> Any:
    compiled, total = self.lowered.compile(*args, **kwargs), self.total
    return lambda state, batch, rng: compiled(state, batch, rng, total)
