"""The one progress line of `prepare`: MB read (of the total when known),
documents, examples, MB/s and ETA, refreshed as work units finish."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
  """Prints to stderr; in place on a terminal, at most every few seconds else."""

  def __init__(self, total_bytes: int | None, num_units: int, quiet: bool,
               stream=None):
    self._total, self._units, self._quiet = total_bytes, num_units, quiet
    self._stream = stream or sys.stderr
    self._tty = getattr(self._stream, 'isatty', lambda: False)()
    self._t0 = self._last = time.perf_counter()
    self._done = self._bytes = self._docs = self._examples = 0
    self._shown = False

  def update(self, marker: dict[str, Any]) -> None:
    self._done += 1
    self._bytes += marker['stats'].get('bytes', 0)
    self._docs += marker['stats'].get('documents', 0)
    self._examples += sum(c['examples'] for c in marker['counts'].values())
    now = time.perf_counter()
    if self._quiet or (now - self._last < (0.5 if self._tty else 10.0)
                       and self._done < self._units):
      return
    self._last = now
    print(self.line(now), end='\r' if self._tty else '\n', file=self._stream,
          flush=True)
    self._shown = True

  def line(self, now: float) -> str:
    mb, secs = self._bytes / 2**20, max(now - self._t0, 1e-9)
    rate = mb / secs
    read = f'{mb:,.2f}'
    eta = ''
    if self._total:
      total = self._total / 2**20
      read += f' of {total:,.2f}'
      if rate > 0 and self._done < self._units:
        eta = f', ETA {_clock((total - mb) / rate)}'
    return (f'prepare: {read} MiB read, units {self._done}/{self._units}, '
            f'{self._docs:,} documents, {self._examples:,} examples, '
            f'{rate:.2f} MiB/s{eta}')

  def close(self) -> None:
    if self._shown and self._tty:
      print(file=self._stream)


def _clock(seconds: float) -> str:
  seconds = int(seconds)
  return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'
