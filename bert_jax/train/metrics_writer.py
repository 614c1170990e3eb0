"""Metrics out: TensorBoard (WORKDIR/tb), WORKDIR/metrics.jsonl, and a console
progress line. Only process 0 writes; other processes get a no-op writer.

On object storage (a ``gs://`` workdir) nothing can be appended to: both go
to a local staging folder (metrics.jsonl first downloaded, so a resumed run
continues it) and are uploaded whole by ``sync()``: at most every
``sync_secs`` from ``write``, at every checkpoint save and at ``close``. A
killed run loses at most the lines since the last sync, which are those of
steps it recomputes after resuming anyway. (Staging works for every URI
epath knows.) TensorBoard files come from ``bert_jax.train.event_file``, which
needs neither TensorFlow nor torch.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from typing import Any

import jax
from absl import logging

from bert_jax import storage
from bert_jax.train import event_file


def _plain(v: Any) -> Any:
  try:
    return float(v)
  except (TypeError, ValueError):
    return v


class MetricsWriter:
  """Writes one JSON object per (step, split) and the same scalars to TB."""

  def __init__(self, workdir: str, enabled: bool | None = None,
               sync_secs: float = 30.0):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.path = os.path.join(workdir, 'metrics.jsonl')
    self._workdir, self._sync_secs = workdir, sync_secs
    self._tb, self._staging = None, None
    self._purge_step: int | None = None  # Set by rewind().
    local = workdir
    if self.enabled:
      storage.makedirs(workdir)
      if storage.is_uri(workdir):
        local = self._staging = tempfile.mkdtemp(prefix='bert_jax_metrics_')
        if storage.exists(self.path):  # Resuming: keep the earlier lines.
          storage.copyfile(self.path, os.path.join(local, 'metrics.jsonl'))
    self._local_path = os.path.join(local, 'metrics.jsonl')
    self._tb_dir = os.path.join(local, 'tb')
    self._last_sync = time.monotonic()

  def _tensorboard(self):
    # Opened at the first write, so that a rewind's purge_step reaches it.
    if self._tb is None:
      self._tb = event_file.EventFileWriter(self._tb_dir,
                                            purge_step=self._purge_step)
    return self._tb

  def write(self, step: int, split: str, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    record = {'step': int(step), 'split': split}
    record.update({k: _plain(v) for k, v in sorted(metrics.items())})
    with open(self._local_path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    tb = self._tensorboard()
    tb.add_scalars(step, {
        f'{split}/{k}': v for k, v in record.items()
        if k not in ('step', 'split') and isinstance(v, float)
        and math.isfinite(v)})
    tb.flush()
    if time.monotonic() - self._last_sync >= self._sync_secs:
      self.sync()

  def sync(self) -> None:
    """Uploads the staged files to a remote workdir (a no-op locally)."""
    if self._staging is None:
      return
    if os.path.exists(self._local_path):
      storage.copyfile(self._local_path, self.path)
    if os.path.isdir(self._tb_dir):
      storage.copytree(self._tb_dir, os.path.join(self._workdir, 'tb'))
    self._last_sync = time.monotonic()

  def rewind(self, step: int) -> None:
    """Forgets what was written after STEP: the run resumes from there.

    Records of later steps (written by the run that was killed or stopped
    after its last checkpoint) are recomputed, so they are dropped, as is a
    last line a kill cut short; the file is rewritten atomically. TensorBoard
    gets ``purge_step`` for the same reason.
    """
    if not self.enabled:
      return
    kept, dropped = [], 0
    if os.path.exists(self._local_path):
      with open(self._local_path, encoding='utf-8', errors='replace') as f:
        for line in f:
          try:
            keep = line.endswith('\n') and json.loads(line)['step'] <= step
          except (ValueError, KeyError, TypeError):
            keep = False  # Half a line, or not ours.
          if keep:
            kept.append(line)
          else:
            dropped += 1
    if dropped:
      storage.write_text(self._local_path, ''.join(kept))
      logging.warning('%s: dropped %d records after step %d (recomputed from '
                      'the checkpoint) or cut short.', self.path, dropped, step)
    self._purge_step = step + 1

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    self.sync()
    if self._staging is not None:
      shutil.rmtree(self._staging, ignore_errors=True)
      self._staging = None


class Progress:
  """Console line: step, loss, steps/s, tokens/s, ETA."""

  def __init__(self, total_steps: int, start_step: int):
    self.total = total_steps
    self.last_step = start_step
    self.last_time = time.perf_counter()

  def rates(self, step: int, tokens: float) -> tuple[float, float]:
    now = time.perf_counter()
    dt = max(now - self.last_time, 1e-9)
    steps = step - self.last_step
    self.last_step, self.last_time = step, now
    return steps / dt, tokens / dt

  def line(self, step: int, m: dict[str, float]) -> str:
    """The console line of step STEP from its log-window metrics M."""
    head = f'step {step}/{self.total} | loss {m["loss"]:.4f}'
    sps = m.get('steps_per_sec', 0.0)
    if sps <= 0:  # Right after the compile step: no rate yet.
      return head
    eta = (self.total - step) / sps
    line = (f'{head} | {sps:.2f} steps/s | {m["tokens_per_sec"]:,.0f} tok/s '
            f'| pad {100 * m.get("padding_fraction", 0.0):.1f}%')
    if 'mfu' in m:
      line += f' | MFU {100 * m["mfu"]:.1f}%'
    return line + f' | ETA {_fmt_time(eta)}'


def _fmt_time(seconds: float) -> str:
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


def log_line(text: str) -> None:
  if jax.process_index() == 0:
    logging.info(text)
    print(text, flush=True)
