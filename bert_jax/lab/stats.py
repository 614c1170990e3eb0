"""Statistics over seeds (or folds): mean, std, a 95% t-interval, and the
noise rule the report applies.

* ``std`` is the sample standard deviation (ddof=1).
* The 95% interval is mean +- t(0.975, n-1) * std / sqrt(n): Student's t,
  because with 3-5 seeds the normal 1.96 would be far too narrow (t = 4.30
  at n=3, 2.78 at n=5).
* **Noise rule**: a difference from the baseline is *within noise* when the
  two 95% intervals overlap; it is called better or worse only when they do
  not. (Overlapping intervals do not prove there is no effect; disjoint ones
  are a conservative sign that there is one.) With n < 2 on either side there
  is no interval and the report says so instead of judging.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from scipy import stats as scipy_stats


@dataclasses.dataclass(frozen=True)
class Summary:
  n: int
  mean: float
  std: float | None          # None when n < 2.
  lo: float | None           # 95% interval; None when n < 2.
  hi: float | None

  @property
  def half_width(self) -> float | None:
    return None if self.hi is None else (self.hi - self.lo) / 2


def t_quantile(n: int, level: float = 0.95) -> float:
  """Two-sided Student t critical value for N samples (N-1 degrees of freedom)."""
  return float(scipy_stats.t.ppf(0.5 + level / 2, n - 1))


def summarize(values: Sequence[float], level: float = 0.95) -> Summary | None:
  """Summary of the finite VALUES (None when there are none)."""
  xs = [float(v) for v in values if v is not None and math.isfinite(v)]
  n = len(xs)
  if not n:
    return None
  mean = sum(xs) / n
  if n < 2:
    return Summary(n, mean, None, None, None)
  std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
  half = t_quantile(n, level) * std / math.sqrt(n)
  return Summary(n, mean, std, mean - half, mean + half)


def compare(value: Summary | None, baseline: Summary | None,
            lower_is_better: bool) -> str:
  """'within noise' | 'better' | 'worse' | 'n<2: no interval' | '' (no data)."""
  if value is None or baseline is None:
    return ''
  if value.lo is None or baseline.lo is None:
    return 'n<2: no interval'
  if value.lo <= baseline.hi and baseline.lo <= value.hi:
    return 'within noise'
  higher = value.mean > baseline.mean
  return 'better' if higher != lower_is_better else 'worse'
