"""Named points where a run can be made to wait, so a test lands a kill there.

The kill -9 harness (``experiments/reliability/chaos.py``) must kill a run *during*
evaluation or while the best checkpoint is written, which take milliseconds
in a tiny run. With ``BERT_JAX_PAUSE_AT=point@step`` (or ``point`` for any
step; several comma-separated) the run prints ``[pause] point@step`` and
sleeps ``BERT_JAX_PAUSE_SECONDS`` (default 600) when it gets there; the
harness kills it on that line. Unset (always, outside such tests) a point
costs one dictionary lookup.

Points: ``eval`` (after the first evaluation split is scored and reported,
before the others and before the best checkpoint), ``best`` (in the middle
of writing ``WORKDIR/best``: params written, the rest not yet).
"""

from __future__ import annotations

import os
import time

ENV = 'BERT_JAX_PAUSE_AT'
SECONDS_ENV = 'BERT_JAX_PAUSE_SECONDS'
POINTS = ('eval', 'best')


def _wanted() -> dict[str, set[int] | None]:
  """{point: steps (None = every step)} from the environment."""
  out: dict[str, set[int] | None] = {}
  for spec in filter(None, os.environ.get(ENV, '').split(',')):
    point, _, step = spec.strip().partition('@')
    if point not in POINTS:
      raise ValueError(f'{ENV}={os.environ[ENV]!r}: unknown point {point!r}; '
                       f'the points are {POINTS} (docs/reliability.md).')
    if not step:
      out[point] = None
    elif out.get(point, set()) is not None:
      out.setdefault(point, set()).add(int(step))
  return out


_WANTED = _wanted()


def pause(point: str, step: int) -> None:
  """Waits here if the environment asks for POINT at STEP (see above)."""
  if point not in _WANTED:
    return
  steps = _WANTED[point]
  if steps is None or step in steps:
    print(f'[pause] {point}@{step}', flush=True)
    time.sleep(float(os.environ.get(SECONDS_ENV, '600')))
