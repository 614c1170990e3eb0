r"""Where the time of one pretraining train step goes, op by op.

Usage (from the repository root; the same model flags as benchmark_step.py)::

  python experiments/benchmarks/profile_step.py --size base --batch 8 --seq_len 128 \
      --dtype float32 [--profile_steps 2] [--trace_dir /tmp/step_trace] \
      [--top 30] [--hlo_out /tmp/step.hlo.txt]

It compiles the exact step ``benchmark_step.py`` times (``build_jax``), runs
``--warmup`` steps, then ``--profile_steps`` steps under ``jax.profiler``
(a Perfetto trace, also viewable in Perfetto/TensorBoard), and joins each
XLA op of the trace with its instruction in the optimized HLO: the jax
operation it came from (``op_name`` metadata) and the source line. It prints
the time per step of the top ops and a summary by part of the model (a
category guessed from the source file and op name, see ``CATEGORIES``);
``--hlo_out`` writes the optimized HLO for reading.

On XLA:CPU every thunk (fusion, dot, YNNPACK fusion, loop) is one event, so
the op times add up to the step, less the executor's gaps between ops.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

import benchmark_step as bench  # pylint: disable=g-bad-import-order

# (category, regex on 'op_name stack frames'), first match wins. The op_name
# carries the Flax module path (bert/layer_3/attention/query/...) and the
# frames name the source lines, so a category names the code to read.
CATEGORIES = (
    ('dropout random bits', r'Dropout_\d+/.*(_bernoulli|_uniform|random_bits|threefry)'),
    ('dropout mask apply', r'stochastic\.py|models/dropout\.py'),
    ('masking (on-device MLM masks)', r'masking\.py|/prepare'),
    ('MLM head + loss', r'/mlm/|_classification\.py|pretraining\.py|heads\.py:1[34]\d'),
    ('optimizer (clip + AdamW)', r'optax/|step\.py'),
    ('attention softmax', r'softmax'),
    ('attention scores / weighted sum', r'blhk|bhls'),
    ('QKV + out projections', r'/attention/(query|key|value|out)/'),
    ('FFN (dense + GELU)', r'/mlp/(wi|wo)|/mlp/'),
    ('layer norm', r'_norm/|LayerNorm|normalization\.py'),
    ('embeddings', r'/embeddings/'),
    ('pooler + NSP head', r'/pooler/|/nsp/'),
)


def parse_args(argv=None):
  extra = ('--profile_steps', '--trace_dir', '--top', '--hlo_out')
  argv = list(sys.argv[1:] if argv is None else argv)
  own = {}
  rest = []
  i = 0
  while i < len(argv):
    if argv[i] in extra:
      own[argv[i][2:]] = argv[i + 1]
      i += 2
    else:
      rest.append(argv[i])
      i += 1
  args = bench.parse_args(rest)
  args.profile_steps = int(own.get('profile_steps', 2))
  args.trace_dir = own.get('trace_dir') or tempfile.mkdtemp(prefix='step_trace_')
  args.top = int(own.get('top', 30))
  args.hlo_out = own.get('hlo_out', '')
  return args


_INSTR = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = (\S+?) (\w[\w\-]*)\(')
_META = re.compile(r'op_name="([^"]*)"')
_FRAME = re.compile(r'stack_frame_id=(\d+)')
_TABLE_ROW = re.compile(r'^(\d+) (.*)$')


def _tables(hlo_text: str) -> dict[str, dict[int, str]]:
  # The optimized HLO's header: FileNames, FunctionNames, FileLocations and
  # StackFrames, each a list of 'id value' rows; instructions name a frame.
  tables, current = {}, None
  for line in hlo_text.splitlines():
    if line in ('FileNames', 'FunctionNames', 'FileLocations', 'StackFrames'):
      current = tables.setdefault(line, {})
      continue
    m = _TABLE_ROW.match(line) if current is not None else None
    if m:
      current[int(m.group(1))] = m.group(2).strip('"')
    elif current is not None and line.strip():
      current = None
  return tables


def _frames(tables, frame_id: int) -> list[str]:
  """'file:line:function' of a stack frame and its callers, innermost first."""
  def field(text, key):
    m = re.search(key + r'=(\d+)', text)
    return int(m.group(1)) if m else 0
  out, seen = [], set()
  while frame_id and frame_id not in seen:
    seen.add(frame_id)
    frame = tables.get('StackFrames', {}).get(frame_id, '')
    loc = tables.get('FileLocations', {}).get(field(frame, 'file_location_id'), '')
    path = tables.get('FileNames', {}).get(field(loc, 'file_name_id'), '?')
    func = tables.get('FunctionNames', {}).get(field(loc, 'function_name_id'), '?')
    rel = path.split('site-packages/')[-1] if 'site-packages/' in path else (
        'bert_jax/' + path.split('/bert_jax/')[-1] if '/bert_jax/' in path
        else os.path.basename(path))
    out.append(f"{rel}:{field(loc, 'line')}:{func}")
    frame_id = field(frame, 'parent_frame_id')
  return out


def hlo_index(hlo_text: str) -> dict[str, dict]:
  """Instruction name -> shape, opcode, op_name, stack and bert_jax source."""
  tables = _tables(hlo_text)
  index = {}
  for line in hlo_text.splitlines():
    m = _INSTR.match(line)
    if not m:
      continue
    meta = _META.search(line)
    frame = _FRAME.search(line)
    stack = _frames(tables, int(frame.group(1))) if frame else []
    ours = [f for f in stack if f.startswith('bert_jax/')]
    index[m.group(1)] = {
        'shape': m.group(2), 'opcode': m.group(3),
        'op_name': meta.group(1) if meta else '',
        'stack': stack,
        'source': ours[0].rsplit(':', 1)[0] if ours else '',
    }
  return index


def category(info: dict) -> str:
  text = ' '.join([info.get('op_name', '')] + info.get('stack', []))
  for name, pattern in CATEGORIES:
    if re.search(pattern, text):
      return name
  return 'other'


def trace_events(trace_dir: str) -> list[dict]:
  files = sorted(glob.glob(os.path.join(trace_dir, '**', 'perfetto_trace.json.gz'),
                           recursive=True))
  if not files:
    raise FileNotFoundError(f'no perfetto_trace.json.gz under {trace_dir}')
  with gzip.open(files[-1]) as f:
    data = json.load(f)
  events = data['traceEvents'] if isinstance(data, dict) else data
  return [e for e in events if e.get('ph') == 'X']


def main(argv=None) -> int:
  args = parse_args(argv)
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  ns = bench.build_jax(args)
  hlo = ns.compiled.as_text()
  if args.hlo_out:
    with open(args.hlo_out, 'w') as f:
      f.write(hlo)
  index = hlo_index(hlo)
  state = ns.state
  with jax.set_mesh(ns.mesh), nn.logical_axis_rules(ns.rules):
    for i in range(1 + args.warmup):
      state, metrics = ns.compiled(state, ns.batches[i % bench.NUM_BATCHES],
                                   ns.train_rng)
    jax.block_until_ready((state, metrics))
    jax.profiler.start_trace(args.trace_dir, create_perfetto_trace=True)
    for i in range(args.profile_steps):
      state, metrics = ns.compiled(state, ns.batches[i % bench.NUM_BATCHES],
                                   ns.train_rng)
      jax.block_until_ready((state, metrics))
    jax.profiler.stop_trace()

  per_op = collections.Counter()
  step_us = 0.0
  for e in trace_events(args.trace_dir):
    name = e['name']
    if name == 'ThunkExecutor::Execute (wait for completion)':
      step_us += e.get('dur', 0)
    elif name in index:
      per_op[name] += e.get('dur', 0)
  n = args.profile_steps
  total_ms = sum(per_op.values()) / 1e3 / n
  by_cat = collections.Counter()
  for name, us in per_op.items():
    by_cat[category(index[name])] += us / 1e3 / n
  print(f'step (executor wall): {step_us / 1e3 / n:.1f} ms; sum of op times: '
        f'{total_ms:.1f} ms per step over {n} steps '
        f'(trace: {args.trace_dir})')
  print(f"\n{'ms/step':>9} {'share':>6}  category")
  for cat, ms in by_cat.most_common():
    print(f'{ms:9.1f} {ms / total_ms:6.1%}  {cat}')
  print(f"\n{'ms/step':>9} {'share':>6}  {'op':<28} {'shape':<28} source  op_name")
  for name, us in per_op.most_common(args.top):
    info = index[name]
    ms = us / 1e3 / n
    print(f"{ms:9.1f} {ms / total_ms:6.1%}  {name:<28} {info['shape'][:28]:<28} "
          f"{info['source']}  {info['op_name'][-90:]}")
  return 0


if __name__ == '__main__':
  sys.exit(main())
