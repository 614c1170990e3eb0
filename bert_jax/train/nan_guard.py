"""What a non-finite loss does to a run: ``train.nan_policy``.

``stop`` (the default): the run stops at the first non-finite loss, naming
the step and the last good checkpoint.

``skip``: the jitted step drops any update whose loss or gradient norm is not
finite, or that would make a parameter non-finite (``step.make_train_step``,
``skip_nonfinite``): params and optimizer state stay as they were, and the
batch counts as consumed. Here the host counts those steps, writes
``skipped_steps`` (since the last log) and ``skipped_total`` (since launch)
to metrics.jsonl, and stops after ``train.nan_max_skips`` skips in a row: a
run that only ever skips has diverged.
"""

from __future__ import annotations

import math
from typing import Any

import jax

from bert_jax.train import metrics_writer

POLICIES = ('stop', 'skip')


def check_config(train: Any) -> None:
  """Fails naming the field on a bad ``train.nan_policy`` / ``nan_max_skips``."""
  policy = train.get('nan_policy', 'stop')
  if policy not in POLICIES:
    raise ValueError(f'train.nan_policy={policy!r} is not valid; choose one '
                     f'of {POLICIES}.')
  if policy == 'skip' and train.get('nan_max_skips', 1) < 1:
    raise ValueError(f'train.nan_max_skips={train.nan_max_skips} must be >= 1.')


class NanGuard:
  """Reads each step's metrics on the host and applies the policy."""

  def __init__(self, train: Any, ckpt: Any):
    self.skip = train.get('nan_policy', 'stop') == 'skip'
    self.max_skips = train.get('nan_max_skips', 1)
    self.ckpt = ckpt
    self.in_a_row = self.since_log = self.total = 0

  def check(self, step: int, metrics: Any) -> dict[str, float] | None:
    """STEP's metrics as floats, or None for a skipped step.

    Raises:
      FloatingPointError: the loss is not finite (``stop``), or
        ``nan_max_skips`` updates in a row were skipped (``skip``).
    """
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    if self.skip and values.pop('skipped') > 0:
      self.in_a_row += 1
      self.since_log += 1
      self.total += 1
      metrics_writer.log_line(
          f'Step {step}: loss {values["loss"]}, gradient norm '
          f'{values["grad_norm"]}; update skipped ({self.in_a_row} in a row, '
          f'train.nan_max_skips={self.max_skips}).')
      if self.in_a_row >= self.max_skips:
        self._stop(f'{self.in_a_row} updates in a row were skipped for a '
                   f'non-finite loss or gradient (steps '
                   f'{step - self.in_a_row + 1} to {step})')
      return None
    self.in_a_row = 0
    if not math.isfinite(values['loss']):
      self._stop(f'Loss is {values["loss"]} at step {step}')
    return values

  def counts(self) -> dict[str, float]:
    """Skip counts for the metrics record of a log step ({} under ``stop``)."""
    if not self.skip:
      return {}
    out = {'skipped_steps': float(self.since_log),
           'skipped_total': float(self.total)}
    self.since_log = 0
    return out

  def _stop(self, what: str) -> None:
    self.ckpt.wait()
    raise FloatingPointError(
        f'{what}; stopping. The last good checkpoint is step '
        f'{self.ckpt.latest_step()} in {self.ckpt.directory}.')
