"""Classification and regression metrics, as GLUE defines them.

Each function follows the scikit-learn / SciPy definition the GLUE reference
code calls (``accuracy_score``, ``f1_score``, ``matthews_corrcoef``,
``pearsonr``, ``spearmanr``), written in numpy so that evaluation needs
neither package. Where those return NaN or warn (a constant input), these
return 0.0 quietly: a constant predictor carries no correlation, and a
warning per evaluation would bury the log.

Entity F1 (NER) and SQuAD EM/F1 live in ``ner_metrics`` and ``squad_metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# GLUE task -> the metric keys its leaderboard reports (see glue_metrics).
GLUE_METRICS: dict[str, tuple[str, ...]] = {
    'cola': ('mcc',),
    'sst2': ('accuracy',),
    'mrpc': ('accuracy', 'f1', 'accuracy_and_f1'),
    'qqp': ('accuracy', 'f1', 'accuracy_and_f1'),
    'stsb': ('pearson', 'spearman', 'corr'),
    'mnli': ('accuracy',),
    'qnli': ('accuracy',),
    'rte': ('accuracy',),
    'wnli': ('accuracy',),
}


def _pair(preds, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
  """Both inputs as 1-D arrays of the same, non-zero length."""
  p, y = np.asarray(preds).reshape(-1), np.asarray(labels).reshape(-1)
  if p.shape != y.shape:
    raise ValueError(f'{name}: {p.size} predictions but {y.size} labels.')
  if p.size == 0:
    raise ValueError(f'{name}: no examples to score.')
  return p, y


def accuracy(preds, labels) -> float:
  """Share of predictions equal to their label."""
  p, y = _pair(preds, labels, 'accuracy')
  return float(np.mean(p == y))


def _f1(p: np.ndarray, y: np.ndarray, positive) -> float:
  tp = np.sum((p == positive) & (y == positive))
  fp = np.sum((p == positive) & (y != positive))
  fn = np.sum((p != positive) & (y == positive))
  denom = 2 * tp + fp + fn
  # sklearn's zero_division default: no positives at all scores 0.
  return float(2 * tp / denom) if denom else 0.0


def f1(preds, labels, positive: int = 1) -> float:
  """Binary F1 of class POSITIVE (GLUE: MRPC and QQP, positive class 1)."""
  p, y = _pair(preds, labels, 'f1')
  return _f1(p, y, positive)


def macro_f1(preds, labels, labels_set: Sequence | None = None) -> float:
  """Unweighted mean of per-class F1.

  Args:
    preds: Predicted class per example.
    labels: True class per example.
    labels_set: Classes to average over. None = those present in LABELS or
      PREDS (sklearn's default), so a class absent from both does not pull
      the mean down with a 0.

  Returns:
    The macro-averaged F1.
  """
  p, y = _pair(preds, labels, 'macro_f1')
  classes = np.unique(np.concatenate([p, y])) if labels_set is None else labels_set
  return float(np.mean([_f1(p, y, c) for c in classes]))


def matthews_corrcoef(preds, labels) -> float:
  """Matthews correlation (multi-class, Gorodkin's R_K, as sklearn).

  A constant predictor (or constant labels) gives 0.0, as sklearn does.
  """
  p, y = _pair(preds, labels, 'mcc')
  classes, inv = np.unique(np.concatenate([y, p]), return_inverse=True)
  y_i, p_i = inv[:y.size], inv[y.size:]
  k = len(classes)
  confusion = np.zeros((k, k), np.float64)
  np.add.at(confusion, (y_i, p_i), 1.0)
  t_sum, p_sum = confusion.sum(1), confusion.sum(0)
  correct, n = np.trace(confusion), confusion.sum()
  cov_yp = correct * n - np.dot(t_sum, p_sum)
  cov_pp = n * n - np.dot(p_sum, p_sum)
  cov_yy = n * n - np.dot(t_sum, t_sum)
  if cov_pp * cov_yy == 0:
    return 0.0
  return float(cov_yp / np.sqrt(cov_yy * cov_pp))


def _is_constant(x: np.ndarray) -> bool:
  # Exact test: x - mean(x) of a constant float vector need not be exactly 0
  # (rounding in the mean), which would give a garbage correlation.
  return bool(np.all(x == x[0]))


def pearson(preds, labels) -> float:
  """Pearson correlation; 0.0 when either side is constant (SciPy: NaN)."""
  p, y = _pair(preds, labels, 'pearson')
  p, y = p.astype(np.float64), y.astype(np.float64)
  if _is_constant(p) or _is_constant(y):
    return 0.0
  pc, yc = p - p.mean(), y - y.mean()
  r = np.dot(pc, yc) / np.sqrt(np.dot(pc, pc) * np.dot(yc, yc))
  return float(np.clip(r, -1.0, 1.0))


def average_ranks(x) -> np.ndarray:
  """1-based ranks, ties sharing their mean rank (scipy.stats.rankdata)."""
  x = np.asarray(x).reshape(-1)
  order = np.argsort(x, kind='stable')
  sorted_x = x[order]
  # Start of each run of equal values in sorted order.
  starts = np.concatenate([[True], sorted_x[1:] != sorted_x[:-1]])
  run_id = np.cumsum(starts) - 1
  first = np.flatnonzero(starts)
  last = np.concatenate([first[1:], [x.size]]) - 1
  mean_rank = (first + last) / 2.0 + 1.0
  ranks = np.empty(x.size, np.float64)
  ranks[order] = mean_rank[run_id]
  return ranks


def spearman(preds, labels) -> float:
  """Spearman correlation: Pearson of average ranks; 0.0 for constant input."""
  p, y = _pair(preds, labels, 'spearman')
  return pearson(average_ranks(p), average_ranks(y))


def mean_squared_error(preds, labels) -> float:
  p, y = _pair(preds, labels, 'mse')
  return float(np.mean((p.astype(np.float64) - y.astype(np.float64)) ** 2))


def classification_metrics(preds, labels, num_labels: int) -> dict[str, float]:
  """Metrics of a local classification task (binary F1 only for 2 classes)."""
  out = {'accuracy': accuracy(preds, labels),
         'macro_f1': macro_f1(preds, labels),
         'mcc': matthews_corrcoef(preds, labels)}
  if num_labels == 2:
    out['f1'] = f1(preds, labels)
  return out


def regression_metrics(preds, labels) -> dict[str, float]:
  """Metrics of a local regression task."""
  return {'pearson': pearson(preds, labels), 'spearman': spearman(preds, labels),
          'mse': mean_squared_error(preds, labels)}


def glue_metrics(task: str, preds, labels) -> dict[str, float]:
  """The metrics the GLUE leaderboard reports for TASK.

  Args:
    task: A GLUE task name (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli).
    preds: Predicted class ids, or scores for stsb.
    labels: Gold class ids, or gold scores for stsb.

  Returns:
    cola: mcc; mrpc, qqp: accuracy, f1 and accuracy_and_f1 (their mean);
    stsb: pearson, spearman and corr (their mean); the others: accuracy.
  """
  if task not in GLUE_METRICS:
    raise ValueError(f'Unknown GLUE task {task!r}; choose one of {tuple(GLUE_METRICS)}.')
  if task == 'cola':
    return {'mcc': matthews_corrcoef(preds, labels)}
  if task in ('mrpc', 'qqp'):
    acc, f = accuracy(preds, labels), f1(preds, labels)
    return {'accuracy': acc, 'f1': f, 'accuracy_and_f1': (acc + f) / 2}
  if task == 'stsb':
    r, rho = pearson(preds, labels), spearman(preds, labels)
    return {'pearson': r, 'spearman': rho, 'corr': (r + rho) / 2}
  return {'accuracy': accuracy(preds, labels)}
