"""Trials grouped by sweep entry: mean +- std and 95% interval per metric, and
each entry's difference from the baseline judged by the noise rule
(bert_jax/lab/stats.py)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from typing import Any

from bert_jax.lab import stats


def metrics_records(path: str) -> Iterator[dict[str, Any]]:
  """The records of a run's metrics.jsonl (none if the file is missing),
  skipping a line a killed run cut short."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    for line in f:
      try:
        yield json.loads(line)
      except json.JSONDecodeError:
        continue


def group(rows: list[dict[str, Any]], entries: dict[str, Any] | None = None
          ) -> list[dict[str, Any]]:
  """One dict per entry: name, overrides, trials, status, step, summaries, tokens/s.

  Args:
    rows: bert_jax.lab.report.collect's trial rows (with 'entry').
    entries: The entries' own overrides (sweep.json), shown instead of a
      trial's (whose may hold per-fold files).
  """
  by_entry: dict[str, list[dict[str, Any]]] = {}
  for r in rows:
    by_entry.setdefault(r['entry'], []).append(r)
  out = []
  for name, trials in by_entry.items():
    # A one-seed run (NAME, the config's own seed) beside seeded ones
    # (NAME.seedS) of the same entry is usually a repeat of one of them:
    # counting it would add a duplicate sample.
    seeded = [t for t in trials if t.get('seed') is not None]
    unseeded = len(trials) - len(seeded) if seeded else 0
    trials = seeded or trials
    done = [t for t in trials if t['status'] == 'done']
    keys = sorted({k for t in done for k in t['metrics']})
    tps = [t['tokens_per_sec'] for t in done if t['tokens_per_sec']]
    steps = sorted({t['step'] for t in done if t['step'] is not None})
    if len(trials) == 1:
      status = trials[0]['status']
    else:
      status = f'{len(done)}/{len(trials)} done'
      bad = [t['status'] for t in trials if t['status'] != 'done']
      if bad:
        status += ' (' + ', '.join(sorted(set(bad))) + ')'
    if unseeded:
      status += (f'; {unseeded} one-seed trial(s) of {name} left out (rerun '
                 'with seeds: it repeats a seeded one)')
    out.append({
        'name': name,
        'overrides': (entries or {}).get(name, trials[0]['overrides']),
        'trials': trials,
        'status': status,
        'step': steps[0] if len(steps) == 1 else ('/'.join(map(str, steps)) or None),
        'summaries': {k: stats.summarize([t['metrics'].get(k) for t in done])
                      for k in keys},
        'tokens_per_sec': sum(tps) / len(tps) if tps else None,
    })
  return out


def _mean(g: dict[str, Any], metric: str | None) -> float | None:
  s = g['summaries'].get(metric) if metric else None
  return None if s is None else s.mean


def table(groups: list[dict[str, Any]], metric: str | None, baseline: str,
          lower_is_better: bool) -> tuple[list[str], list[list[Any]], list[str]]:
  """(header, cells, notes): one row per entry, best mean first."""
  def key(g):
    v = _mean(g, metric)
    if v is None or not math.isfinite(v):
      return (1, 0.0, g['name'])
    return (0, v if lower_is_better else -v, g['name'])

  groups = sorted(groups, key=key)
  base = next((g for g in groups if g['name'] == baseline), None)
  base_s = base['summaries'].get(metric) if base and metric else None
  notes = []
  header = ['name', 'overrides', 'status', 'step']
  if metric:
    header += [f'{metric} mean', '± std', '95% CI']
    if base_s is not None:
      header += [f'Δ vs {baseline}', 'noise rule']
    else:
      notes.append(f'No delta column: no finished entry named {baseline!r} with {metric}.')
  others = sorted({k for g in groups for k in g['summaries']} - {metric})
  header += others + ['tokens/s']
  cells = []
  for g in groups:
    s = g['summaries'].get(metric) if metric else None
    line: list[Any] = [g['name'], g['overrides'], g['status'], g['step']]
    if metric:
      line += [None if s is None else s.mean, None if s is None else s.std,
               None if s is None or s.lo is None else (s.lo, s.hi)]
      if base_s is not None:
        line += [None if s is None else s.mean - base_s.mean,
                 '(baseline)' if g is base else
                 stats.compare(s, base_s, lower_is_better) or None]
    line += [_mean(g, k) for k in others] + [g['tokens_per_sec']]
    cells.append(line)
  if metric:
    n = sorted({s.n for g in groups if (s := g['summaries'].get(metric))})
    notes.append(
        f'Sorted by the mean of {metric} over each entry\'s finished trials (n = '
        f'{"/".join(map(str, n))}), {"lower" if lower_is_better else "higher"} is '
        'better. ± std: sample standard deviation; 95% CI: Student t interval of '
        'the mean. Noise rule: a difference from the baseline is "within noise" '
        'when the two 95% intervals overlap; "better"/"worse" only when they do '
        'not. Other metric columns are means.')
  return header, cells, notes


def grid_fields(groups: list[dict[str, Any]]) -> list[str]:
  """Override fields that take two or more values across the entries."""
  values: dict[str, set[str]] = {}
  for g in groups:
    for k, v in g['overrides'].items():
      values.setdefault(k, set()).add(repr(v))
  return [k for k, vs in values.items() if len(vs) > 1]


def summary_cell(s: stats.Summary | None, show_n: bool = True) -> str:
  """'mean ± std [95% CI] (n=N)' of a metric over trials; '–' when none."""
  if s is None:
    return '–'
  if s.std is None:
    return f'{s.mean:.4f} (n=1)'
  n = f' (n={s.n})' if show_n else ''
  return f'{s.mean:.4f} ± {s.std:.4f} [{s.lo:.4f}, {s.hi:.4f}]{n}'


def all_metrics_table(groups: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
  """Every metric of every entry as 'mean ± std [95% CI]' (n = finished trials)."""
  keys = sorted({k for g in groups for k in g['summaries']})
  header = ['name'] + keys

  return header, [[g['name']] + [summary_cell(g['summaries'].get(k)) for k in keys]
                  for g in groups]
