r"""The report of a pretrain -> fine-tune study (bert_jax/lab/study.py).

  python -m bert_jax.lab.study_report ROOT     # rewrites ROOT/study.md

One row per variant (and the random-init floor): the pretraining metric and
each downstream task's main metric (at the last step), as mean ± std [95% CI]
over the finished seeds; then, per task, each pretrained row judged against
the random-init row by the noise rule of bert_jax/lab/stats.py. A pretrained
row that does not beat the floor (intervals overlap, or it is lower) is named
in plain words. The per-stage sweep reports (tables and figures:
bert_jax/lab/report.py) are written beside it: ``ROOT/pretrain_report.md``,
``ROOT/finetune_TASK_report.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
from typing import Any

from bert_jax.lab import aggregate
from bert_jax.lab import report
from bert_jax.lab import stats

try:  # matplotlib is optional: without it the report is the table alone.
  from bert_jax.lab import plots
except ImportError:
  plots = None

RANDOM_INIT = 'random_init'
PRETRAIN_METRIC = 'mlm_accuracy'


def _cell(s: stats.Summary | None) -> str:
  return aggregate.summary_cell(s, show_n=False)


def _groups(root: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
  if not os.path.isdir(root):
    return [], []
  rows = report.collect(root)
  index = os.path.join(root, 'sweep.json')
  entries = None
  if os.path.exists(index):
    with open(index) as f:
      entries = json.load(f).get('entries')
  return rows, aggregate.group(rows, entries)


def verdict(value: stats.Summary | None, floor: stats.Summary | None,
            lower_is_better: bool) -> str:
  """'beats random init' only when the intervals are disjoint in its favour."""
  if value is None or floor is None:
    return 'no result yet'
  rule = stats.compare(value, floor, lower_is_better)
  if rule == 'better':
    return 'beats random init'
  if rule == 'n<2: no interval':
    return 'cannot tell (n<2)'
  return ('does NOT beat random init (intervals overlap)' if rule == 'within noise'
          else 'does NOT beat random init (lower)' if rule == 'worse' else rule)


def build(root: str) -> tuple[str, list[str]]:
  """(markdown of ROOT/study.md, the tasks' sub-roots)."""
  meta_path = os.path.join(root, 'study.json')
  meta = {}
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
  _, pgroups = _groups(os.path.join(root, 'pretrain'))
  ft_dir = os.path.join(root, 'finetune')
  tasks = meta.get('suite') or (sorted(os.listdir(ft_dir)) if os.path.isdir(ft_dir) else [])
  per_task = {}
  for task in tasks:
    rows, groups = _groups(os.path.join(ft_dir, task))
    metric = report.choose_metric(rows, None) if rows else None
    per_task[task] = (metric, {g['name']: g for g in groups})
  names = [g['name'] for g in pgroups]
  names += ([RANDOM_INIT] if per_task else []) + sorted({n for _, gs in per_task.values() for n in gs}
                                  - set(names) - {RANDOM_INIT})
  pre = {g['name']: g for g in pgroups}
  reference = meta.get('reference') or (names[0] if names else '')
  header = ['variant', 'overrides', f'pretrain {PRETRAIN_METRIC}']
  if not per_task:  # A pretraining-only study: the held-out loss too.
    header.append('pretrain mlm_loss')
  for task, (metric, _) in per_task.items():
    header += [f'{task} {metric}', f'{task} vs random init', f'{task} vs {reference}']
  lines = []
  verdicts = []
  for name in names:
    g = pre.get(name)
    cells = [name, '(random init: no pretraining)' if name == RANDOM_INIT else
             report.overrides_text(g['overrides']) if g else '–',
             '–' if g is None else _cell(g['summaries'].get(PRETRAIN_METRIC))]
    if not per_task:
      cells.append('–' if g is None else _cell(g['summaries'].get('mlm_loss')))
    for task, (metric, groups) in per_task.items():
      lower = report.default_lower(metric)
      s = groups.get(name, {}).get('summaries', {}).get(metric) if metric else None
      floor = groups.get(RANDOM_INIT, {}).get('summaries', {}).get(metric) if metric else None
      cells.append(_cell(s))
      ref = groups.get(reference, {}).get('summaries', {}).get(metric) if metric else None
      # The architecture question: this variant against the reference, downstream.
      versus = ('(reference)' if name == reference else
                stats.compare(s, ref, lower) or '–')
      if name == RANDOM_INIT:
        cells += ['(the floor)', versus]
        continue
      v = verdict(s, floor, lower)
      cells += [v, versus]
      if s is not None and floor is not None and v != 'beats random init':
        verdicts.append(f'- **{name} {v}** on {task}: {metric} {s.mean:.4f} vs '
                        f'{floor.mean:.4f} from random init (n = {s.n} / {floor.n}).')
    lines.append(cells)
  md = [f'# Study: {os.path.basename(root)}', '',
        f'Runs: `{root}`' + (f' (study file `{meta["study"]}`)' if meta.get('study') else ''),
        '', report.markdown(header, [[c for c in l] for l in lines]), '',
        'Each cell: mean ± sample std [95% Student t interval] over the finished '
        'seeds; downstream metrics at the last fine-tuning step. "beats random '
        'init" only when the two 95% intervals are disjoint (bert_jax/lab/stats.py);'
        ' overlapping intervals are reported as not beating it. "vs '
        f'{reference}": the same noise rule against the reference variant '
        '(within noise / better / worse).', '']
  if verdicts:
    md += ['Pretrained rows that do not beat the random-init floor:', ''] + verdicts + ['']
  elif any(groups.get(RANDOM_INIT) for _, groups in per_task.values()):
    md += ['Every pretrained row with results beats the random-init floor.', '']
  md += length_table(root, meta.get('eval_lengths') or [])
  for task, note in (meta.get('heldout') or {}).items():
    md.append(f'Held-out text of {task}: {note}.')
  return '\n'.join(md) + '\n', tasks


def length_series(root: str, lengths: list[int]
                  ) -> tuple[dict[str, dict[int, stats.Summary | None]], set[tuple[str, int]]]:
  """({variant: {length: held-out mlm_loss summary}}, {(variant, length) n/a})
  from ROOT/eval_length/L<N>; n/a where the position table is too short."""
  series: dict[str, dict[int, stats.Summary | None]] = {}
  na_cells = set()
  for n in lengths:
    sub = os.path.join(root, 'eval_length', f'L{n}')
    _, groups = _groups(sub)
    na_path = os.path.join(sub, 'not_applicable.json')
    na = json.load(open(na_path)) if os.path.exists(na_path) else []
    for g in groups:
      series.setdefault(g['name'], {})[n] = g['summaries'].get('mlm_loss')
    for name in sorted({t.rsplit('.seed', 1)[0] for t in na}):
      if n not in series.setdefault(name, {}):
        series[name][n] = None
        na_cells.add((name, n))
  return series, na_cells


def length_table(root: str, lengths: list[int]) -> list[str]:
  """Markdown lines: held-out MLM loss per variant at each evaluation length
  (ROOT/eval_length/L<N>), n/a where the position table is too short."""
  if not lengths:
    return []
  series, na_cells = length_series(root, lengths)
  first = lengths[0]
  header = ['variant'] + [f'mlm_loss at {n}' for n in lengths] + [
      f'{n} vs {first}' for n in lengths[1:]]
  rows = []
  for name, points in series.items():
    cells, base = [name], points.get(first)
    for n in lengths:
      cells.append('n/a (position table ends before)' if (name, n) in na_cells
                   else _cell(points.get(n)))
    for n in lengths[1:]:
      got = points.get(n)
      cells.append('n/a' if got is None or base is None else
                   f'{got.mean - base.mean:+.4f} ({stats.compare(got, base, True)})')
    rows.append(cells)
  return ['## Held-out MLM loss by evaluation length', '',
          report.markdown(header, rows), '',
          f'Each checkpoint evaluated (eval_only) on its held-out documents at each length; '
          f'"N vs {first}": the change of the mean loss and the noise rule '
          '(worse = the loss rose beyond the intervals).', '']


def _eval_lengths(root: str) -> list[int]:
  path = os.path.join(root, 'study.json')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return list(json.load(f).get('eval_lengths') or [])


def _train_length(root: str) -> int | None:
  """data.max_seq_length of the first pretraining trial with a saved config."""
  pre = os.path.join(root, 'pretrain')
  for name in sorted(os.listdir(pre)) if os.path.isdir(pre) else []:
    path = os.path.join(pre, name, 'config.json')
    if os.path.exists(path):
      with open(path) as f:
        return json.load(f).get('data', {}).get('max_seq_length')
  return None


def plots_by_length(series, train_length, path) -> bool:
  if plots is None:
    return False
  return plots.by_length(series, 'mlm_loss', train_length, path)


def write(root: str, figures: bool = True) -> str:
  """Writes ROOT/study.md (and the per-stage reports with figures); returns its path."""
  root = os.path.abspath(root)
  text, tasks = build(root)
  links = []
  if figures:
    stages = [('pretrain', os.path.join(root, 'pretrain'), [])] + [
        (f'finetune_{t}', os.path.join(root, 'finetune', t), ['--baseline', RANDOM_INIT])
        for t in tasks]
    for label, sub, extra in stages:
      if not os.path.isdir(sub):
        continue
      out = os.path.join(root, f'{label}_report.md')
      with contextlib.redirect_stdout(io.StringIO()):  # Its table is in ours.
        report.main([sub, '--out', out] + extra)
      links.append(f'- [{label}]({os.path.basename(out)}): table with every metric, '
                   'learning curves, final metric with 95% intervals')
  lengths = _eval_lengths(root)
  if figures and lengths:
    series, _ = length_series(root, lengths)
    out = os.path.join(root, 'eval_length', 'mlm_loss_by_length.png')
    if plots_by_length(series, _train_length(root), out):
      links.append(f'- [held-out mlm_loss by evaluation length]'
                   f'({os.path.relpath(out, root)})')
  if links:
    text += '\nPer-stage reports and figures:\n\n' + '\n'.join(links) + '\n'
  path = os.path.join(root, 'study.md')
  with open(path, 'w') as f:
    f.write(text)
  print(text)
  print(f'Report: {path}')
  return path


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m bert_jax.lab.study_report',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('root', help='The study root (--root of bert_jax.lab.study).')
  parser.add_argument('--no_figures', action='store_true')
  args = parser.parse_args(argv)
  if not os.path.isdir(args.root):
    print(f'error: study root {args.root} does not exist.', file=sys.stderr)
    return 2
  write(args.root, figures=not args.no_figures)
  return 0


if __name__ == '__main__':
  sys.exit(main())
