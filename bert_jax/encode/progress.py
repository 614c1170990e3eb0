"""The progress line of a long encode: texts done, texts/s and ETA."""

from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
  return f'{h}h{m:02d}m' if h else f'{m}m{s:02d}s'


class Progress:
  """Prints 'encode: N[/TOTAL] texts, R texts/s[, ETA T]' every INTERVAL s.

  On a terminal the line is rewritten in place; elsewhere (a log file) one
  line is written each time.
  """

  def __init__(self, total: int | None = None, interval: float = 2.0,
               stream=None, start_at: int = 0):
    self.total = total
    self.interval = interval
    self.stream = stream or sys.stderr
    self.start_at = start_at  # texts done by an earlier (resumed) run
    self._t0 = time.perf_counter()
    self._last = self._t0
    self._done = start_at
    self._tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self._shown = None  # the count last printed

  def rate(self) -> float:
    elapsed = time.perf_counter() - self._t0
    return (self._done - self.start_at) / max(elapsed, 1e-9)

  def line(self) -> str:
    text = f'encode: {self._done:,}'
    if self.total:
      text += f'/{self.total:,}'
    text += f' texts, {self.rate():,.0f} texts/s'
    if self.total and self.rate() > 0:
      text += f', ETA {_duration((self.total - self._done) / self.rate())}'
    return text

  def update(self, done: int) -> None:
    self._done = self.start_at + done
    now = time.perf_counter()
    if now - self._last >= self.interval:
      self._last = now
      self._print()

  def _print(self, end: str = '') -> None:
    self._shown = self._done
    if self._tty:
      self.stream.write('\r' + self.line() + end)
    else:
      self.stream.write(self.line() + '\n')
    self.stream.flush()

  def close(self) -> None:
    """Prints the final count (unless just printed) and ends the line."""
    if self._shown != self._done:
      self._print()
    if self._tty:
      self.stream.write('\n')
      self.stream.flush()
