"""Which checkpoint steps on disk are committed: cheap checks, no orbax.

The one judge of a committed step, for ``pretrained.load_params``, the
trainer's checkpointer (``bert_jax.train.checkpoint`` re-exports these names)
and the launcher's supervisor (``bert_jax.train.peers``), which must not
import orbax and jax just to look at a workdir. It imports only storage, so
it sits just above the lowest layer (setup.cfg).
"""

from __future__ import annotations

import json
import os

from bert_jax import storage

COMMIT_MARKER = 'commit_success.txt'   # Written by orbax just before the rename.
# Small files that must parse as JSON in a good step (the arrays are checked
# by restoring them).
_JSON_FILES = ('_CHECKPOINT_METADATA', 'metadata/metadata', 'state/_METADATA')


def step_problem(step_dir: str) -> str | None:
  """Why STEP_DIR is not a committed checkpoint; None if it looks good.

  Cheap checks only: markers and the small JSON files. A truncated array file
  passes them and fails at restore, where ``restore_latest`` falls back too.
  """
  if not storage.isdir(step_dir):
    return 'it is missing'
  for item in ('', 'state', 'metadata'):
    if not storage.exists(os.path.join(step_dir, item, COMMIT_MARKER)):
      where = f'{item}/' if item else ''
      return (f'{where}{COMMIT_MARKER} (the commit marker) is missing: the '
              'save did not finish')
  for name in _JSON_FILES:
    try:
      with storage.open_file(os.path.join(step_dir, name), 'rb') as f:
        json.load(f)
    except (OSError, ValueError) as e:
      return f'{name} is unreadable ({type(e).__name__}: {e})'
  return None


def newest_good_step(directory: str) -> int | None:
  """The newest step in DIRECTORY (``WORKDIR/checkpoints``) that
  ``step_problem`` passes; None when there is none."""
  try:
    steps = sorted((int(d) for d in storage.listdir(directory) if d.isdigit()),
                   reverse=True)
  except OSError:
    return None
  for step in steps:
    if step_problem(os.path.join(directory, str(step))) is None:
      return step
  return None
