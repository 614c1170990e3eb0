"""What a compiled train step says about a slice: memory, FLOPs, collectives,
and the step time they imply at a given MFU.

Every figure is per chip (XLA compiles one SPMD program that each chip runs)
except the model FLOPs, tokens and step time, which are per step of the whole
slice.

* Memory: ``Compiled.memory_analysis()``. In use at the peak = arguments +
  outputs - aliased (the donated state is updated in place) + temporaries +
  generated code; compared with the chip's HBM.
* FLOPs: ``Compiled.cost_analysis()['flops']`` is XLA's count for one chip.
  It counts a loop body once: with ``model.scan_layers`` (and gradient
  accumulation) it is low by the repeated iterations; the model FLOPs
  (``experiments.benchmarks.benchmark_step.model_flops``) are the reference.
* Collectives: read from the optimised HLO text, one entry per kind
  (all-reduce, all-gather, reduce-scatter, all-to-all, collective-permute),
  counted per execution: an op in a loop body counts once per iteration
  (trip counts from the loop conditions). Bytes are each op's result on one
  chip, summed.
* Estimate: step time = model FLOPs / (MFU x peak bf16 FLOP/s x chips), the
  definition of MFU (model FLOPs, not the recomputation that remat adds),
  and the days ``train.num_steps`` steps take at that rate.
"""

from __future__ import annotations

import collections
import math
import re
from typing import Any

import jax
import numpy as np

from experiments.scaling import aot_topology
from experiments.benchmarks import benchmark_step

GIB = aot_topology.GIB
COLLECTIVES = ('all-reduce', 'all-gather', 'reduce-scatter', 'all-to-all',
               'collective-permute', 'collective-broadcast')
_DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'f8e4m3fn': 1, 'f8e5m2': 1,
                's16': 2, 'u16': 2, 'f16': 2, 'bf16': 2, 's32': 4, 'u32': 4,
                'f32': 4, 's64': 8, 'u64': 8, 'f64': 8, 'c64': 8, 'c128': 16}
# '  %name = TYPE op(...)': TYPE (an array type or a tuple of them; its
# layouts hold 'T(8,128)' but never a space before a '(') runs up to the first
# ' word('.
_INSTR = re.compile(r'^\s*(?:ROOT\s+)?%?[\w.-]+\s*=\s*(.*?)\s([a-z][\w-]*)\(')
_COMP = re.compile(r'^(?:ENTRY\s+)?%?([\w.-]+)\s+\(.*\{\s*$')
_ARRAY = re.compile(r'\b([a-z]+\d*[a-z0-9]*)\[([\d,]*)\]')


def _bytes(type_str: str) -> int:
  total = 0
  for dtype, dims in _ARRAY.findall(type_str):
    n = math.prod(int(d) for d in dims.split(',') if d) if dims else 1
    total += n * _DTYPE_BYTES.get(dtype, 4)
  return total


def _computations(hlo: str) -> tuple[dict[str, list[str]], str]:
  """Computation name -> its instruction lines, and the ENTRY's name."""
  comps: dict[str, list[str]] = {}
  entry, current = '', None
  for line in hlo.splitlines():
    m = _COMP.match(line)
    if m:
      current = m.group(1)
      comps[current] = []
      if line.startswith('ENTRY'):
        entry = current
    elif line.startswith('}'):
      current = None
    elif current is not None:
      comps[current].append(line)
  return comps, entry


def _trip_count(cond: list[str]) -> int:
  """Iterations of a counted loop ``i < N`` (jax's scan/fori): N, else 1."""
  consts = [int(v) for line in cond
            for v in re.findall(r's32\[\]\S*\s+constant\((-?\d+)\)', line)]
  if len(consts) == 1 and any('direction=LT' in l for l in cond):
    return max(consts[0], 1)
  return 1


def collectives(hlo: str) -> dict[str, dict[str, int]]:
  """{kind: {'count': executions per step, 'bytes': summed result bytes}}."""
  comps, entry = _computations(hlo)
  out: dict[str, dict[str, int]] = collections.defaultdict(
      lambda: {'count': 0, 'bytes': 0})

  def visit(name: str, mult: int, depth: int) -> None:
    if depth > 50 or name not in comps:
      return
    for line in comps[name]:
      m = _INSTR.match(line)
      if not m:
        continue
      type_str, op = m.groups()
      kind = op[:-len('-done')] if op.endswith('-done') else op
      if kind in COLLECTIVES and not op.endswith('-start'):
        out[kind]['count'] += mult
        out[kind]['bytes'] += mult * _bytes(type_str)
      if op == 'while':
        cond = re.search(r'condition=%?([\w.-]+)', line)
        body = re.search(r'body=%?([\w.-]+)', line)
        trips = _trip_count(comps.get(cond.group(1), [])) if cond else 1
        if body:
          visit(body.group(1), mult * trips, depth + 1)
      elif not op.endswith('-done'):
        for callee in re.findall(r'(?:calls|branch_computations|'
                                 r'true_computation|false_computation)='
                                 r'\{?([^}\s]+)', line):
          for c in callee.split(','):
            visit(c.strip().lstrip('%').rstrip(','), mult, depth + 1)

  visit(entry, 1, 0)
  return {k: dict(v) for k, v in sorted(out.items())}


def _param_counts(params: Any) -> tuple[int, int]:
  """(all params, non-embedding params) as benchmark_step counts them."""
  total = embedding = 0
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    n = int(np.prod(x.shape))
    total += n
    names = [str(getattr(k, 'key', k)) for k in path]
    if (set(names) & {'word_embeddings', 'position_embeddings',
                      'token_type_embeddings'}) or names[-2:] == ['mlm', 'bias']:
      embedding += n
  return total, embedding


def _memory(compiled: Any, hbm: float) -> dict[str, Any]:
  m = compiled.memory_analysis()
  mem = {k: int(getattr(m, f'{k}_size_in_bytes', 0) or 0) for k in (
      'argument', 'output', 'alias', 'temp', 'generated_code')}
  total = (mem['argument'] + mem['output'] - mem['alias'] + mem['temp']
           + mem['generated_code'])
  return {**mem, 'total': total, 'hbm': int(hbm), 'fits': total <= hbm,
          'headroom': int(hbm - total)}


def dcn_axes(mesh: Any) -> list[str]:
  """Mesh axes along which devices change slice: their collectives cross
  the data-centre network, orders of magnitude slower than ICI. Only
  ``data`` should (one gradient all-reduce per step)."""
  slices = np.vectorize(lambda d: getattr(d, 'slice_index', 0) or 0)(
      mesh.devices)
  return [name for i, name in enumerate(mesh.axis_names)
          if (np.diff(slices, axis=i) != 0).any()]


def report(c: Any, target: aot_topology.Target, hbm: float, peak: float,
           mfu: tuple[float, ...] = (0.4, 0.5)) -> dict[str, Any]:
  """The JSON-able report of a compiled step (``aot.Compiled``)."""
  config, mc = c.config, c.model_config
  t = config.train
  seq = int(config.data.max_seq_length)
  tokens = int(t.global_batch_size) * seq
  total, embedding = _param_counts(c.params)
  flops = benchmark_step.model_flops(total - embedding, mc.num_layers,
                                     mc.hidden_size, seq, tokens)
  cost = c.compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  steps = max(int(t.num_steps), 0)
  estimates = []
  for u in (mfu if isinstance(mfu, (list, tuple)) else (mfu,)):
    step_s = flops / (u * peak * target.num_chips)
    estimates.append({'mfu': u, 'step_s': step_s, 'tokens_per_s': tokens / step_s,
                      'num_steps': steps, 'days': steps * step_s / 86400})
  mem = _memory(c.compiled, hbm)
  return {
      'target': target.describe(),
      'topology': target.name,
      'num_slices': target.num_slices,
      'fake_devices': target.fake,
      'chips': target.num_chips,
      'hosts': target.num_hosts,
      'device_kind': target.devices[0].device_kind,
      'task': config.task,
      'mesh': dict(c.mesh.shape),
      'dcn_axes': dcn_axes(c.mesh),
      'model': {'layers': mc.num_layers, 'hidden': mc.hidden_size,
                'heads': mc.num_heads, 'vocab': mc.vocab_size,
                'dtype': mc.dtype, 'scan_layers': mc.scan_layers,
                'remat_policy': mc.remat_policy},
      'global_batch_size': int(t.global_batch_size),
      'grad_accum_steps': int(t.grad_accum_steps),
      'seq_len': seq,
      'params': total,
      'non_embedding_params': total - embedding,
      'lower_s': c.lower_s,
      'compile_s': c.compile_s,
      'memory': mem,
      'fits': mem['fits'],
      'xla_flops_per_chip': float(cost.get('flops', 0.0)) or None,
      'xla_bytes_accessed_per_chip': float(cost.get('bytes accessed', 0.0)) or None,
      'model_flops_per_step': flops,
      'collectives': collectives(c.compiled.as_text()),
      'peak_flops_per_chip': peak,
      'estimates': estimates,
  }


def does_not_fit(config: Any, target: aot_topology.Target, hbm: float,
                 message: str) -> dict[str, Any]:
  """The report of a step XLA could not fit in HBM (MESSAGE is XLA's)."""
  lines = [l for l in message.splitlines() if l.strip()]
  return {
      'target': target.describe(), 'topology': target.name,
      'num_slices': target.num_slices, 'fake_devices': target.fake,
      'chips': target.num_chips, 'hosts': target.num_hosts,
      'task': config.task, 'fits': False,
      'global_batch_size': int(config.train.global_batch_size),
      'seq_len': int(config.data.max_seq_length),
      'memory': {'hbm': int(hbm), 'fits': False},
      'compiler_message': '\n'.join(lines[:12]),
  }


def _gib(x: float) -> str:
  if abs(x) >= GIB / 10:
    return f'{x / GIB:.2f} GiB'
  return f'{x / 2**20:.1f} MiB' if abs(x) >= 2**20 / 10 else f'{x / 1024:.1f} KiB'


def format_report(r: dict[str, Any]) -> str:
  """Human-readable lines of a report."""
  out = [f"Compiled for: {r['target']}"]
  if r.get('fake_devices'):
    out.append('  NOTE: libtpu is not installed, so fake CPU devices stand in '
               'for the chips: shardings and shapes are checked, but memory, '
               "FLOPs and collectives are XLA:CPU's, not the TPU's.")
  out.append(f"Task {r['task']}: global batch {r['global_batch_size']} x "
             f"{r['seq_len']} tokens")
  if 'compiler_message' in r:
    out.append(f"DOES NOT FIT in {_gib(r['memory']['hbm'])} of HBM per chip. "
               'XLA says:')
    out += ['  ' + l for l in r['compiler_message'].splitlines()]
    return '\n'.join(out)
  m = r['memory']
  out += [
      f"Mesh {r['mesh']}; model {r['model']}; grad_accum_steps "
      f"{r['grad_accum_steps']}",
      *([f"Mesh axes crossing slices (over DCN): {r['dcn_axes']}"
         + ('' if r['dcn_axes'] == ['data'] else
            '  <- only data should: set mesh.data to a multiple of '
            f"{r['num_slices']}")] if r['num_slices'] > 1 else []),
      f"Params {r['params'] / 1e6:.1f}M ({r['non_embedding_params'] / 1e6:.1f}M "
      f"non-embedding). Lowered in {r['lower_s']:.1f}s, compiled in "
      f"{r['compile_s']:.1f}s.",
      'Memory per chip:',
      f"  arguments {_gib(m['argument'])}, outputs {_gib(m['output'])} "
      f"(aliased with arguments {_gib(m['alias'])}), temporaries "
      f"{_gib(m['temp'])}, code {_gib(m['generated_code'])}",
      f"  in use at peak {_gib(m['total'])} of {_gib(m['hbm'])} HBM: "
      + (f"FITS, {_gib(m['headroom'])} to spare ({m['total'] / m['hbm']:.0%})"
         if m['fits'] else f"DOES NOT FIT by {_gib(-m['headroom'])}"),
      f"FLOPs per step: model {r['model_flops_per_step']:.3e} (whole slice); "
      f"XLA {(r['xla_flops_per_chip'] or 0):.3e} per chip"
      + (' (loop bodies counted once: scan_layers)'
         if r['model']['scan_layers'] else ''),
      'Collectives per step, per chip (executions, result bytes):',
  ]
  if not r['collectives']:
    out.append('  none')
  for kind, v in r['collectives'].items():
    out.append(f"  {kind:<20} {v['count']:6d}  {_gib(v['bytes'])}")
  for e in r['estimates']:
    days = (f", {e['num_steps']:,} steps (train.num_steps) in "
            f"{e['days']:.2f} days" if e['num_steps'] else '')
    out.append(
        f"Estimate at {e['mfu']:.0%} MFU ({r['peak_flops_per_chip'] / 1e12:.0f} "
        f"TFLOP/s per chip): {e['step_s'] * 1e3:.2f} ms per step, "
        f"{e['tokens_per_s']:,.0f} tokens/s{days}.")
  return '\n'.join(out)
