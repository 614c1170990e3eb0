"""Files written whole or not at all: a temporary file, then a rename.

A run killed while writing (``kill -9``, a preempted VM, the OOM killer) must
not leave half a JSON file that the next launch or a reader chokes on. POSIX
``rename`` over an existing file is atomic, so a reader sees the old content
or the new one, never a prefix. The temporary file sits beside the target
(same file system) and carries the PID, so two writers never share one.
"""

from __future__ import annotations

import json
import os
from typing import Any


def write_text(path: str, text: str) -> None:
  """Writes TEXT to PATH atomically (replacing what was there)."""
  tmp = f'{path}.tmp-{os.getpid()}'
  try:
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):  # The write or the rename failed.
      os.remove(tmp)


def write_json(path: str, obj: Any, **dump_kwargs: Any) -> None:
  """``json.dump(obj)`` to PATH atomically; DUMP_KWARGS go to ``json.dumps``."""
  write_text(path, json.dumps(obj, **dump_kwargs))
