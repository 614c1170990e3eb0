r"""Sweep report: one table row per run under a sweep root, sorted by a metric.

  python -m experiments.report --root /tmp/variants
  python -m experiments.report --root /tmp/variants --metric mlm_loss \
      --csv /tmp/variants.csv --markdown /tmp/variants.md

Reads ``ROOT/*/eval_results.json`` (pretraining: flat eval metrics;
fine-tuning: metrics per evaluation split and the best main metric), the
overrides the sweep runner recorded (``overrides.json``, ``ROOT/sweep.json``),
and tokens/s from the last train record of each ``metrics.jsonl``. Runs that
failed, have not finished, or never started are listed as such. The delta
column is the metric minus the baseline run's (``--baseline``, default
``baseline``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from typing import Any

# Metrics where lower is better (sorted ascending).
_LOWER_IS_BETTER = re.compile(r'loss|perplexity|ppl|error')


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def flatten_eval(result: dict[str, Any]) -> dict[str, float]:
  """Metrics of one eval_results.json, pretraining or fine-tuning shape."""
  ev = result.get('eval') or {}
  if 'splits' not in ev:  # Pretraining: {metric: value}.
    return {k: v for k, v in ev.items() if isinstance(v, (int, float))}
  splits = ev['splits'] or {}
  out: dict[str, float] = {}
  for split, metrics in splits.items():
    prefix = '' if len(splits) == 1 else f'{split}/'
    out.update({prefix + k: v for k, v in metrics.items()
                if isinstance(v, (int, float))})
  for k, v in (ev.get('best') or {}).items():
    if isinstance(v, (int, float)):
      out[f'best_{k}'] = v
  return out


def last_tokens_per_sec(path: str) -> float | None:
  """tokens/s of the last train record (skipping the compile step's 0)."""
  if not os.path.exists(path):
    return None
  value = None
  with open(path) as f:
    for line in f:
      try:
        rec = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line cut short by a killed run.
      if rec.get('split') == 'train' and rec.get('tokens_per_sec'):
        value = float(rec['tokens_per_sec'])
  return value


def collect(root: str) -> list[dict[str, Any]]:
  """One dict per run: name, overrides, status, step, metrics, tokens_per_sec."""
  if not os.path.isdir(root):
    raise FileNotFoundError(f'Sweep root {root} does not exist.')
  index_path = os.path.join(root, 'sweep.json')
  planned = _read_json(index_path).get('entries', {}) if os.path.exists(index_path) else {}
  markers = ('eval_results.json', 'overrides.json', 'status.json')
  names = set(planned) | {
      d for d in os.listdir(root)
      if any(os.path.exists(os.path.join(root, d, m)) for m in markers)}
  rows = []
  for name in sorted(names):
    d = os.path.join(root, name)
    row: dict[str, Any] = {'name': name, 'overrides': planned.get(name, {}),
                           'step': None, 'metrics': {}, 'tokens_per_sec': None}
    if os.path.exists(os.path.join(d, 'overrides.json')):
      row['overrides'] = _read_json(os.path.join(d, 'overrides.json')).get(
          'overrides', row['overrides'])
    status = _read_json(os.path.join(d, 'status.json')) if os.path.exists(
        os.path.join(d, 'status.json')) else {}
    results = os.path.join(d, 'eval_results.json')
    if os.path.exists(results):
      try:
        result = _read_json(results)
        row.update(status='done', step=result.get('step'),
                   metrics=flatten_eval(result))
      except (json.JSONDecodeError, AttributeError) as e:
        row['status'] = f'unreadable eval_results.json ({e})'
    elif status.get('status') == 'failed':
      row['status'] = f'failed (exit {status.get("returncode")})'
    elif status or os.path.isdir(d):
      row['status'] = 'unfinished'  # Running now, or its runner was killed.
    else:
      row['status'] = 'missing'
    row['tokens_per_sec'] = last_tokens_per_sec(os.path.join(d, 'metrics.jsonl'))
    rows.append(row)
  return rows


def choose_metric(rows: list[dict[str, Any]], metric: str | None) -> str | None:
  available = sorted({k for r in rows for k in r['metrics']})
  if metric:
    if available and metric not in available:
      raise KeyError(f'--metric {metric!r} is in no run; available: {", ".join(available)}.')
    return metric
  if not available:
    return None
  if 'mlm_accuracy' in available:
    return 'mlm_accuracy'
  # Fine-tuning: the main metric (the one `best` tracks) at the last step. The
  # best over evaluations is picked on the same split, so it flatters.
  for best in (k for k in available if k.startswith('best_') and k != 'best_step'):
    main = best[len('best_'):]
    for k in available:
      if k == main or k.endswith('/' + main):
        return k
    return best
  return available[0]


def table(rows: list[dict[str, Any]], metric: str | None, baseline: str,
          lower_is_better: bool | None = None) -> tuple[list[str], list[list[Any]], list[str]]:
  """(header, raw cell values, notes), rows sorted best first by METRIC."""
  notes = []
  if lower_is_better is None:
    lower_is_better = bool(metric and _LOWER_IS_BETTER.search(metric))

  def key(r):
    v = r['metrics'].get(metric) if metric else None
    if v is None or not math.isfinite(v):
      return (1, 0.0, r['name'])
    return (0, v if lower_is_better else -v, r['name'])

  rows = sorted(rows, key=key)
  base = next((r for r in rows if r['name'] == baseline), None)
  base_value = base['metrics'].get(metric) if base and metric else None
  if metric and base_value is None:
    notes.append(f'No delta column: no finished run named {baseline!r} with {metric}.')
  others = sorted({k for r in rows for k in r['metrics']} - {metric})
  header = ['name', 'overrides', 'status', 'step']
  if metric:
    header.append(metric)
    if base_value is not None:
      header.append(f'Δ {metric} vs {baseline}')
  header += others + ['tokens/s']
  cells = []
  for r in rows:
    value = r['metrics'].get(metric) if metric else None
    line = [r['name'], r['overrides'], r['status'], r['step']]
    if metric:
      line.append(value)
      if base_value is not None:
        line.append(None if value is None else value - base_value)
    line += [r['metrics'].get(k) for k in others] + [r['tokens_per_sec']]
    cells.append(line)
  if metric:
    notes.append(f'Sorted by {metric}, {"lower" if lower_is_better else "higher"} '
                 'is better.')
  return header, cells, notes


def _overrides_text(overrides: dict[str, Any]) -> str:
  def show(v):
    return str(v) if isinstance(v, (bool, str)) or v is None else repr(v)
  return ', '.join(f'{k}={show(v)}' for k, v in overrides.items()) or '(none)'


def _fmt(col: str, value: Any) -> str:
  if value is None:
    return '–'
  if isinstance(value, dict):
    return _overrides_text(value)
  if col == 'tokens/s':
    return f'{value:,.0f}'
  if col.startswith('Δ'):
    return f'{value:+.4f}'
  if isinstance(value, float):
    return f'{value:.4f}'
  return str(value)


def markdown(header: list[str], cells: list[list[Any]]) -> str:
  def esc(s: str) -> str:
    return s.replace('|', '\\|')
  lines = ['| ' + ' | '.join(esc(h) for h in header) + ' |',
           '| ' + ' | '.join('---' for _ in header) + ' |']
  for line in cells:
    lines.append('| ' + ' | '.join(esc(_fmt(h, v)) for h, v in zip(header, line)) + ' |')
  return '\n'.join(lines)


def write_csv(path: str, header: list[str], cells: list[list[Any]]) -> None:
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(header)
    for line in cells:
      w.writerow(['' if v is None else _overrides_text(v) if isinstance(v, dict)
                  else v for v in line])


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m experiments.report', description=__doc__.split('\n\n')[0])
  parser.add_argument('--root', required=True, help='The sweep root (--root of the runner).')
  parser.add_argument('--metric', default=None,
                      help='Sort and delta metric (default mlm_accuracy; for fine-'
                           'tuning runs, the main metric at the last step).')
  parser.add_argument('--baseline', default='baseline', help='Name of the baseline run.')
  parser.add_argument('--lower_is_better', default=None,
                      type=lambda s: s.lower() in ('1', 'true', 'yes'),
                      help='Sort direction (default: lower for losses, else higher).')
  parser.add_argument('--csv', default='', help='Also write the table as CSV here.')
  parser.add_argument('--markdown', default='', help='Also write the table as markdown here.')
  args = parser.parse_args(argv)
  try:
    rows = collect(os.path.abspath(args.root))
    if not rows:
      raise FileNotFoundError(f'No runs under {args.root} (no */eval_results.json, '
                              '*/overrides.json or sweep.json).')
    metric = choose_metric(rows, args.metric)
  except (FileNotFoundError, KeyError) as e:
    print(f'error: {e.args[0]}', file=sys.stderr)
    return 2
  header, cells, notes = table(rows, metric, args.baseline, args.lower_is_better)
  text = markdown(header, cells) + ''.join(f'\n\n{n}' for n in notes)
  print(text)
  if args.markdown:
    with open(args.markdown, 'w') as f:
      f.write(text + '\n')
  if args.csv:
    write_csv(args.csv, header, cells)
  bad = [r['name'] for r in rows if r['status'] != 'done']
  if bad:
    print(f'\n{len(bad)} run(s) without results: {", ".join(bad)}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
