"""The report of experiments/benchmarks/benchmark_step.py: its JSON result and its table."""

from __future__ import annotations

import datetime
import os
import platform

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, 'experiments', 'benchmarks', 'benchmark_step.py')


def result(args, argv: list[str], jax_result: dict, peer: dict | None,
           flax_peer: dict | None, ratio: float | None,
           ratio_flax: float | None) -> dict:
  """The whole run as one dict: settings, machine, each side, the ratios."""
  return {
      'benchmark': 'pretraining train step (forward, backward, optimizer)',
      'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec='seconds'),
      'command': ' '.join([os.path.relpath(SCRIPT, REPO)] + argv),
      'settings': {k: getattr(args, k, None) for k in (
          'size', 'batch', 'seq_len', 'steps', 'warmup', 'dtype', 'scan_layers',
          'attention_impl',
          'objective', 'vocab_size', 'max_predictions', 'peak_tflops', 'seed',
          'no_peer', 'flax_python')},
      'machine': {'platform': platform.platform(), 'cpu_count': os.cpu_count(),
                  'python': platform.python_version()},
      'flops_formula': ('6 * non_embedding_params * batch * seq_len + '
                        '12 * num_layers * hidden * seq_len * batch * seq_len'),
      'bert_jax': jax_result,
      'peer': peer,
      'ratio_tokens_per_s': ratio,
      'flax_peer': flax_peer,
      'ratio_tokens_per_s_flax': ratio_flax,
  }


def _fmt(x, spec):
  return '-' if x is None else format(x, spec)


def table(result: dict) -> str:
  head = (f"{'side':<10} {'dtype':<9} {'compile s':>9} {'1st step s':>10} "
          f"{'step ms':>9} {'real tok/s':>11} {'TFLOP/s':>8} {'MFU':>6} "
          f"{'peak RSS MB':>11} {'others':>6}")
  lines = [head, '-' * len(head)]
  for key in ('bert_jax', 'peer', 'flax_peer'):
    r = result.get(key)
    if not r:
      continue
    if 'error' in r:
      lines.append(f'{key:<10} ERROR: {r["error"]}')
      continue
    lines.append(
        f"{key:<10} {r['dtype']:<9} {_fmt(r.get('lower_and_compile_s'), '9.2f')} "
        f"{r['first_step_s']:10.2f} {r['step_time_s']['median'] * 1e3:9.1f} "
        f"{r['tokens_per_s']:11.0f} {r['achieved_tflops']:8.3f} "
        f"{_fmt(r['mfu'], '6.1%')} {r['peak_rss_mb']:11.0f} "
        f"{_fmt(r.get('other_processes_busy_cores'), '6.2f')}")
  lines.append('others = CPU cores other processes kept busy during the timed '
               'steps (0 = a quiet machine).')
  data = result.get('data') or {}
  if data.get('kind') == 'builtin':
    lines.append(f"data: builtin corpus, {data['documents']} documents, "
                 f"{data['examples']} examples: {data['padding_unpacked']:.1%} "
                 f"padding one per row (the peers), "
                 f"{data['padding_packed']:.1%} packed (bert_jax)")
  if result.get('ratio_tokens_per_s') is not None:
    lines.append(f"ratio (bert_jax / HF PyTorch real tokens/s): "
                 f"{result['ratio_tokens_per_s']:.2f}")
  if result.get('ratio_tokens_per_s_flax') is not None:
    lines.append(f"ratio (bert_jax / HF Flax real tokens/s): "
                 f"{result['ratio_tokens_per_s_flax']:.2f}")
  return '\n'.join(lines)
