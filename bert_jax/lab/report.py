r"""Sweep report: a table (one row per entry, sorted by a metric), figures, a file.

  python -m bert_jax.lab.report /tmp/variants          # also writes /tmp/variants/report.md
  python -m bert_jax.lab.report /tmp/variants --metric mlm_loss \
      --csv /tmp/variants.csv --out /tmp/variants_report.md

Reads ``ROOT/*/eval_results.json`` (pretraining: flat eval metrics;
fine-tuning: metrics per evaluation split and the best main metric), the
overrides the sweep runner recorded (``overrides.json``, ``ROOT/sweep.json``),
and tokens/s from the last train record of each ``metrics.jsonl``. Trials
that failed, have not finished, or never started are listed as such; the
report reads whatever has finished.

With one trial per entry each row is a run and the delta column is the metric
minus the baseline's (``--baseline``, default ``baseline``). With several
seeds (or folds) per entry each row gives the mean, the standard deviation
and the 95% t-interval over the entry's finished trials, the delta of the
means, and the noise rule's verdict (bert_jax/lab/stats.py: within noise when
the intervals overlap). The report file (``--out``, default
``ROOT/report.md``) holds the table and figures (bert_jax/lab/plots.py):
learning curves, the final metric with error bars, and a heat map when the
entries form a two-field grid.
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

from bert_jax.lab import aggregate

try:
  from bert_jax.lab import plots
except ImportError as e:  # A plain `pip install -e .` has no matplotlib.
  plots = None
  _NO_PLOTS = (f'no figures ({e}): pip install -e \'.[experiments]\' (matplotlib) '
               'for them.')

# Metrics where lower is better (sorted ascending).
_LOWER_IS_BETTER = re.compile(r'loss|perplexity|ppl|error')


def default_lower(metric: str | None) -> bool:
  """The default sort direction of METRIC: lower for losses and errors."""
  return bool(metric and _LOWER_IS_BETTER.search(metric))


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
  value = None
  for rec in aggregate.metrics_records(path):
    if rec.get('split') == 'train' and rec.get('tokens_per_sec'):
      value = float(rec['tokens_per_sec'])
  return value


def collect(root: str) -> list[dict[str, Any]]:
  """One dict per run: name, overrides, status, step, metrics, tokens_per_sec."""
  if not os.path.isdir(root):
    raise FileNotFoundError(f'Sweep root {root} does not exist.')
  index_path = os.path.join(root, 'sweep.json')
  index = _read_json(index_path) if os.path.exists(index_path) else {}
  trials = index.get('trials', {})
  # Entries without trials listed are one-trial entries of an older runner.
  planned = {n: o for n, o in index.get('entries', {}).items()
             if not any(t.get('entry') == n for t in trials.values())}
  planned.update({n: t.get('overrides', {}) for n, t in trials.items()})
  markers = ('eval_results.json', 'overrides.json', 'status.json')
  names = set(planned) | {
      d for d in os.listdir(root)
      if any(os.path.exists(os.path.join(root, d, m)) for m in markers)}
  rows = []
  for name in sorted(names):
    d = os.path.join(root, name)
    row: dict[str, Any] = {'name': name, 'overrides': planned.get(name, {}),
                           'step': None, 'metrics': {}, 'tokens_per_sec': None,
                           'entry': name, 'seed': None}
    if name in trials:  # Planned (sweep.json) but maybe never started.
      row.update(entry=trials[name].get('entry', name), seed=trials[name].get('seed'),
                 overrides=trials[name].get('overrides', {}))
    if os.path.exists(os.path.join(d, 'overrides.json')):
      recorded = _read_json(os.path.join(d, 'overrides.json'))
      row['overrides'] = recorded.get('overrides', row['overrides'])
      row['entry'] = recorded.get('entry') or row['entry']
      row['seed'] = recorded.get('seed', row['seed'])
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
    lower_is_better = default_lower(metric)

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


def overrides_text(overrides: dict[str, Any]) -> str:
  def show(v):
    return str(v) if isinstance(v, (bool, str)) or v is None else repr(v)
  return ', '.join(f'{k}={show(v)}' for k, v in overrides.items()) or '(none)'


def _fmt(col: str, value: Any) -> str:
  if value is None:
    return '–'
  if isinstance(value, dict):
    return overrides_text(value)
  if isinstance(value, tuple):  # A 95% interval.
    return f'[{value[0]:.4f}, {value[1]:.4f}]'
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
      w.writerow(['' if v is None else overrides_text(v) if isinstance(v, dict)
                  else f'{v[0]}..{v[1]}' if isinstance(v, tuple) else v
                  for v in line])


def write_report(path: str, root: str, title: str, table_md: str,
                 groups: list[dict[str, Any]], metric: str | None, baseline: str,
                 heatmap_fields: list[str]) -> list[str]:
  """Writes the markdown report at PATH with its figures beside it; returns them."""
  out_dir = os.path.dirname(os.path.abspath(path))
  stem = os.path.splitext(os.path.basename(path))[0]
  fig_dir = os.path.join(out_dir, f'{stem}_files')
  os.makedirs(fig_dir, exist_ok=True)
  figures = []

  def add(name: str, caption: str, draw) -> None:
    target = os.path.join(fig_dir, name)
    if plots is not None and draw(target):
      figures.append((caption, os.path.relpath(target, out_dir)))

  if plots is None:
    print(f'note: {_NO_PLOTS}', file=sys.stderr)  # The table alone, then.
  add('learning_curves.png', 'Learning curves (mean over seeds, band ±1 std)',
      lambda p: plots.learning_curves(groups, root, metric, p))
  add('learning_curves_seconds.png', 'Learning curves against training seconds '
      '(logged steps/s summed; compilation and evaluation not counted)',
      lambda p: plots.learning_curves(groups, root, metric, p, x='seconds'))
  if metric:
    add('final_metric.png', f'Final {metric} (mean, error bars: 95% CI)',
        lambda p: plots.bars(groups, metric, baseline, p))
    if len(heatmap_fields) == 2:
      add('heatmap.png', f'{metric} over {heatmap_fields[0]} x {heatmap_fields[1]}',
          lambda p: plots.heatmap(groups, metric, tuple(heatmap_fields), p))
  lines = [f'# {title}', '', f'Runs: `{root}`', '', table_md, '']
  for caption, rel in figures:
    lines += [f'## {caption}', '', f'![{caption}]({rel})', '']
  with open(path, 'w') as f:
    f.write('\n'.join(lines))
  return [os.path.join(out_dir, rel) for _, rel in figures]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.lab.report', description=__doc__.split('\n\n')[0])
  parser.add_argument('sweep_dir', nargs='?', default=None,
                      help='The sweep root (--root of the runner).')
  parser.add_argument('--root', default=None, help='Same as SWEEP_DIR.')
  parser.add_argument('--metric', default=None,
                      help='Sort and delta metric (default mlm_accuracy; for fine-'
                           'tuning runs, the main metric at the last step).')
  parser.add_argument('--baseline', default='baseline', help='Name of the baseline entry.')
  parser.add_argument('--lower_is_better', default=None,
                      type=lambda s: s.lower() in ('1', 'true', 'yes'),
                      help='Sort direction (default: lower for losses, else higher).')
  parser.add_argument('--csv', default='', help='Also write the table as CSV here.')
  parser.add_argument('--markdown', default='', help='Also write the table as markdown here.')
  parser.add_argument('--out', default='',
                      help="The report file (markdown, figures in OUT's stem + _files/ "
                           "beside it); default SWEEP_DIR/report.md; 'none' = no file.")
  parser.add_argument('--heatmap', default='',
                      help='Two override fields for the heat map, F1,F2 (default: '
                           'the two fields a two-field grid varies).')
  args = parser.parse_args(argv)
  root = args.sweep_dir or args.root
  if not root:
    parser.error('give the sweep root: python -m bert_jax.lab.report SWEEP_DIR')
  root = os.path.abspath(root)
  try:
    rows = collect(root)
    if not rows:
      raise FileNotFoundError(f'No runs under {root} (no */eval_results.json, '
                              '*/overrides.json or sweep.json).')
    metric = choose_metric(rows, args.metric)
  except (FileNotFoundError, KeyError) as e:
    print(f'error: {e.args[0]}', file=sys.stderr)
    return 2
  index_path = os.path.join(root, 'sweep.json')
  entries = _read_json(index_path).get('entries') if os.path.exists(index_path) else None
  groups = aggregate.group(rows, entries)
  lower = args.lower_is_better
  if lower is None:
    lower = default_lower(metric)
  several = any(len(g['trials']) > 1 for g in groups)  # Seeds (or folds).
  if several:
    header, cells, notes = aggregate.table(groups, metric, args.baseline, lower)
  else:
    header, cells, notes = table(rows, metric, args.baseline, lower)
  text = markdown(header, cells) + ''.join(f'\n\n{n}' for n in notes)
  if several:
    every, every_cells = aggregate.all_metrics_table(groups)
    text += ('\n\nEvery metric, mean ± std [95% CI] over finished trials:\n\n' +
             markdown(every, every_cells))
  print(text)
  if args.markdown:
    with open(args.markdown, 'w') as f:
      f.write(text + '\n')
  if args.csv:
    write_csv(args.csv, header, cells)
  if args.out != 'none':
    fields = [f.strip() for f in args.heatmap.split(',') if f.strip()]
    if args.heatmap and len(fields) != 2:
      print(f'error: --heatmap {args.heatmap!r}: expected two fields F1,F2.',
            file=sys.stderr)
      return 2
    if not fields:
      varied = aggregate.grid_fields(groups)
      fields = varied if len(varied) == 2 else []
    out = args.out or os.path.join(root, 'report.md')
    figures = write_report(out, root, f'Sweep report: {os.path.basename(root)}',
                           text, groups, metric, args.baseline, fields)
    print(f'\nReport: {out} ({len(figures)} figure(s))')
  bad = [r['name'] for r in rows if r['status'] != 'done']
  if bad:
    print(f'\n{len(bad)} run(s) without results: {", ".join(bad)}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
