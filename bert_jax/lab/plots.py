"""Report figures (matplotlib, Agg backend: no display needed).

* ``learning_curves``: per entry, train loss and the eval metric against the
  step, read from each trial's ``metrics.jsonl``: the mean over seeds as a
  line, +- one standard deviation as a band (only at steps every seed logged).
* ``time_curves``: the same against training seconds (the trainer's logged
  ``steps_per_sec``, summed; compilation and evaluation not counted), where a
  variant slower per step must still lead at the other's wall time.
* ``bars``: the final metric per entry, mean with the 95% interval as error bar.
* ``heatmap``: the mean metric over a two-field grid.
* ``by_length``: a metric against the evaluation length, one line per variant,
  mean with the 95% interval as error bars.
"""

from __future__ import annotations

import math
import os
from typing import Any

import matplotlib

matplotlib.use('Agg')  # Before pyplot: headless hosts, cluster nodes, CI.
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=g-import-not-at-top
import numpy as np  # noqa: E402  pylint: disable=g-import-not-at-top

from bert_jax.lab import aggregate  # noqa: E402  pylint: disable=g-import-not-at-top


def read_curve(path: str, split: str, key: str) -> dict[int, float]:
  """{step: value} of KEY in the SPLIT records of a metrics.jsonl ({} if none)."""
  out: dict[int, float] = {}
  for rec in aggregate.metrics_records(path):
    value = rec.get(key)
    if rec.get('split') == split and isinstance(value, (int, float)) and \
        math.isfinite(value):
      # A run resumed from a checkpoint logs some steps twice: keep the last.
      out[int(rec['step'])] = float(value)
  return out


def _interp(seconds: dict[int, float], step: int) -> float:
  keys = sorted(seconds)
  return float(np.interp(step, keys, [seconds[k] for k in keys]))


def _band(curves: list[dict[int, float]]):
  steps = sorted(set.intersection(*(set(c) for c in curves)))
  if not steps:
    return None
  ys = np.array([[c[s] for s in steps] for c in curves])
  return np.array(steps), ys.mean(0), ys.std(0, ddof=1) if len(curves) > 1 else None


def train_seconds(path: str) -> dict[int, float]:
  """{step: training seconds up to it} of a metrics.jsonl, from the train
  records' ``steps_per_sec`` (each over the steps since the record before);
  {} if none logged it."""
  sps = read_curve(path, 'train', 'steps_per_sec')
  out, prev, total = {}, 0, 0.0
  for step in sorted(sps):
    if sps[step] > 0:
      total += (step - prev) / sps[step]
    out[step], prev = total, step
  return out


def learning_curves(groups: list[dict[str, Any]], root: str, metric: str | None,
                    path: str, x: str = 'step') -> bool:
  """Writes the learning-curve figure to PATH; False when no trial logged
  anything. X: 'step', or 'seconds' (``train_seconds``; the mean over seeds
  of the seconds each logged step was reached at)."""
  panels = [('train', 'loss', 'train loss')]
  eval_key = metric.split('/')[-1] if metric else None
  if eval_key:
    panels.append(('eval', eval_key, f'eval {eval_key}'))
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8),
                           squeeze=False)
  drawn = False
  for ax, (split, key, title) in zip(axes[0], panels):
    for g in groups:
      files = [os.path.join(root, t['name'], 'metrics.jsonl') for t in g['trials']]
      curves = [c for f in files if (c := read_curve(f, split, key))]
      band = _band(curves) if curves else None
      if band is None:
        continue
      steps, mean, std = band
      if x == 'seconds':
        secs = [train_seconds(f) for f in files if read_curve(f, split, key)]
        if not all(secs):
          continue
        steps = np.mean([[_interp(s, step) for step in steps] for s in secs], axis=0)
      line, = ax.plot(steps, mean, marker='o' if len(steps) < 6 else None,
                      label=f'{g["name"]} (n={len(curves)})')
      if std is not None:
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2,
                        color=line.get_color())
      drawn = True
    ax.set_title(title)
    ax.set_xlabel('training seconds' if x == 'seconds' else 'step')
    ax.grid(alpha=0.3)
  if drawn:
    axes[0][0].legend(fontsize=7)
    fig.suptitle('mean over seeds; band = ±1 std', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
  plt.close(fig)
  return drawn


def bars(groups: list[dict[str, Any]], metric: str, baseline: str, path: str) -> bool:
  """Final METRIC per entry: mean, 95% interval as error bars."""
  shown = [(g['name'], s) for g in groups if (s := g['summaries'].get(metric))]
  if not shown:
    return False
  fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(shown) + 2), 3.8))
  x = np.arange(len(shown))
  err = [s.half_width or 0.0 for _, s in shown]
  colors = ['tab:gray' if n == baseline else 'tab:blue' for n, _ in shown]
  ax.bar(x, [s.mean for _, s in shown], yerr=err, capsize=4, color=colors)
  ax.set_xticks(x, [f'{n}\n(n={s.n})' for n, s in shown], rotation=45,
                ha='right', fontsize=7)
  ax.set_ylabel(metric)
  ax.set_title(f'{metric}: mean, error bars 95% CI', fontsize=9)
  ax.set_xlabel(f'gray: {baseline}', fontsize=8)
  lo = min(s.mean - e for (_, s), e in zip(shown, err))
  hi = max(s.mean + e for (_, s), e in zip(shown, err))
  pad = (hi - lo) * 0.15 or abs(hi) * 0.05 or 0.01
  ax.set_ylim(lo - pad, hi + pad)  # Differences at the third decimal stay visible.
  ax.grid(axis='y', alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return True


def heatmap(groups: list[dict[str, Any]], metric: str, fields: tuple[str, str],
            path: str) -> bool:
  """Mean METRIC over the grid of two override FIELDS (rows, columns)."""
  fy, fx = fields
  cells = {}
  for g in groups:
    s = g['summaries'].get(metric)
    if s is not None and fy in g['overrides'] and fx in g['overrides']:
      cells.setdefault((g['overrides'][fy], g['overrides'][fx]), []).append(s.mean)
  if not cells:
    return False
  # Other varied fields (a 3-field grid) are averaged over in each cell.
  averaged = any(len(v) > 1 for v in cells.values())
  cells = {k: float(np.mean(v)) for k, v in cells.items()}

  def order(values):
    try:
      return sorted(values)
    except TypeError:
      return sorted(values, key=repr)

  ys = order({y for y, _ in cells})
  xs = order({x for _, x in cells})
  grid = np.full((len(ys), len(xs)), np.nan)
  for (y, x), v in cells.items():
    grid[ys.index(y), xs.index(x)] = v
  fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 3, 0.8 * len(ys) + 2))
  im = ax.imshow(grid, cmap='viridis', aspect='auto')
  ax.set_xticks(range(len(xs)), [str(x) for x in xs])
  ax.set_yticks(range(len(ys)), [str(y) for y in ys])
  ax.set_xlabel(fx)
  ax.set_ylabel(fy)
  lo, hi = np.nanmin(grid), np.nanmax(grid)
  for i in range(len(ys)):
    for j in range(len(xs)):
      if not np.isnan(grid[i, j]):
        bright = hi > lo and (grid[i, j] - lo) / (hi - lo) > 0.6  # viridis: yellow
        ax.text(j, i, f'{grid[i, j]:.3f}', ha='center', va='center',
                color='black' if bright else 'white', fontsize=8)
  fig.colorbar(im, ax=ax, label=metric)
  ax.set_title(f'mean {metric}' + (' (averaged over the other fields)'
                                     if averaged else ''), fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return True


def by_length(series: dict[str, dict[int, Any]], metric: str, train_length: int | None,
              path: str) -> bool:
  """SERIES: {variant: {length: stats.Summary}}; a missing length is not drawn
  (n/a). A dotted line marks TRAIN_LENGTH. False when there is nothing to draw."""
  fig, ax = plt.subplots(figsize=(6, 3.8))
  drawn = False
  for name, points in series.items():
    lengths = sorted(n for n, s in points.items() if s is not None)
    if not lengths:
      continue
    means = [points[n].mean for n in lengths]
    errs = [(points[n].half_width or 0.0) for n in lengths]
    ax.errorbar(lengths, means, yerr=errs, marker='o', capsize=3,
                label=f'{name} (n={points[lengths[0]].n})')
    drawn = True
  if drawn:
    if train_length:
      ax.axvline(train_length, linestyle=':', color='gray', label='training length')
    ax.set_xscale('log', base=2)
    ax.set_xlabel('evaluation length (tokens)')
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(f'held-out {metric} by length; error bars: 95% CI', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
  plt.close(fig)
  return drawn
