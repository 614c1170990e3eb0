"""``encode_to_file``: an iterable of texts to a .npy file or a shard folder.

An output ending in ``.npy`` is one file ``[N, D]`` float32 (with
``token_states``, also ``OUT.token_states.npy`` [N, L, D] and
``OUT.attention_mask.npy`` [N, L] int8, L = max_length). Anything else is a
folder of shards and ``meta.json``.

Both are written as shards of ``shard_size`` texts: into the folder, or, for a
``.npy``, into a hidden working folder beside it (``DIR/.OUT.npy.parts/``)
whose shards are joined into the file at the end and then removed. A shard
file gets its final name only when complete, so a run stopped for any reason
and run again with the same arguments skips the complete shards (their texts
are read, not encoded) and does the rest. With several processes
(``jax.distributed``) each encodes its own shards (``hosts``) and process 0
writes ``meta.json`` or joins the ``.npy``. An existing output is refused
unless ``overwrite``; unfinished work of other arguments is refused too.

The folder's ``meta.json`` is written first with ``complete: false`` and the
run's arguments, and at the end with the shard list and the summary.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np

from bert_jax.encode import hosts
from bert_jax.encode import stream
from bert_jax.encode import writers
from bert_jax.encode.progress import Progress
from bert_jax.errors import UserInputError

DEFAULT_SHARD_SIZE = 100_000
SUMMARY = 'summary.process-{:05d}.json'  # one per process, merged at the end
# Summed over the processes.
_COUNTS = ('encoded', 'tokens', 'truncated', 'empty_texts', 'slots')


def _shapes(encoder, token_states: bool) -> dict[str, tuple[tuple[int, ...],
                                                            Any]]:
  d, length = encoder.hidden_size, encoder.max_length
  shapes = {'vectors': ((d,), np.float32)}
  if token_states:
    shapes['token_states'] = ((length, d), np.float32)
    shapes['attention_mask'] = ((length,), np.int8)
  return shapes


def work_dir(output: str) -> str:
  """Where the shards of OUTPUT go: the folder, or a hidden one beside a .npy."""
  if not output.endswith('.npy'):
    return output
  head, name = os.path.split(os.path.abspath(output))
  return os.path.join(head, f'.{name}.parts')


def _clear_folder(directory: str) -> None:
  """Removes what an encode wrote there (shards, meta.json), nothing else."""
  for pattern in [f'{kind}-*.npy*' for kind in writers.KINDS] + [
      SUMMARY.replace('{:05d}', '*'), writers.META, writers.META + '.partial']:
    for p in glob.glob(os.path.join(directory, pattern)):
      os.remove(p)


def check_output(output: str, run: dict[str, Any], kinds,
                 overwrite: bool) -> bool:
  """Refuses to clobber silently; True when unfinished work is resumed."""
  folder = work_dir(output)
  if output.endswith('.npy'):
    if os.path.isdir(output):
      raise UserInputError(f'--output={output}: is a directory; a .npy output '
                           'is a file.')
    exists = [p for p in npy_paths(output, kinds).values()
              if os.path.exists(p)]
    if exists and not overwrite:
      raise UserInputError(f'--output={output}: {exists[0]} exists; pass '
                           '--overwrite to replace it.')
  elif os.path.isfile(output):
    raise UserInputError(f'--output={output}: is a file; give a .npy path or '
                         'a folder for shards.')
  if overwrite or not os.path.isdir(folder):
    return False
  meta = writers.read_meta(folder)
  if meta is None:
    if os.listdir(folder):
      raise UserInputError(f'--output={output}: the folder is not empty and '
                           'holds no encode meta.json; choose an empty or new '
                           'folder.')
    return False
  if meta.get('complete'):
    raise UserInputError(f'--output={output}: holds a complete encode '
                         f'({meta.get("num_texts")} texts, meta.json); pass '
                         '--overwrite to redo it, or choose another folder.')
  if meta.get('run') != run:
    old = meta.get('run') or {}
    diff = sorted(k for k in set(old) | set(run) if old.get(k) != run.get(k))
    raise UserInputError(f'--output={output}: {folder} holds an unfinished '
                         f'encode run with other arguments (differs in '
                         f'{diff}); rerun with the same arguments to resume, '
                         'or pass --overwrite.')
  return True


def npy_paths(output: str, kinds) -> dict[str, str]:
  """OUT.npy, OUT.token_states.npy, OUT.attention_mask.npy (those in KINDS)."""
  return {kind: output if kind == 'vectors' else
          f'{output[:-len(".npy")]}.{kind}.npy' for kind in kinds}


def _merge(folder: str, count: int, num_texts: int, shard_size: int,
           kinds) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """The processes' summaries summed, and the shard list (checked whole)."""
  parts = []
  for p in range(count):
    path = os.path.join(folder, SUMMARY.format(p))
    with open(path, encoding='utf-8') as f:
      parts.append(json.load(f))
  summary = dict(parts[0])
  for key in _COUNTS:
    summary[key] = sum(s[key] for s in parts)
  summary['compiles'] = max(s['compiles'] for s in parts)
  summary['resumed_from'] = sum(s['resumed_from'] for s in parts)
  summary['padding_share'] = round(
      1 - summary['tokens'] / max(summary['slots'], 1), 4)
  summary['num_texts'] = num_texts
  have = writers.complete_shards(folder, kinds)
  want = {i: min(shard_size, num_texts - i * shard_size)
          for i in range(math.ceil(num_texts / shard_size))}
  if have != want:
    raise RuntimeError(f'{folder}: the shards do not add up to the input\'s '
                       f'{num_texts} texts (rows per shard: {have}); did the '
                       'input change since an interrupted run? Rerun with '
                       '--overwrite.')
  shards, first = [], 0
  for i, rows in want.items():
    shards.append({'first': first, 'rows': rows,
                   **{k: os.path.basename(writers.shard_path(folder, k, i))
                      for k in kinds}})
    first += rows
  return summary, shards


def _finish(output: str, folder: str, meta: dict[str, Any],
            summary: dict[str, Any], shards, shapes) -> None:
  """Process 0: the folder's final meta.json, or the .npy files joined."""
  for p in glob.glob(os.path.join(folder, SUMMARY.replace('{:05d}', '*'))):
    os.remove(p)
  if not output.endswith('.npy'):
    writers.write_json(os.path.join(folder, writers.META),
                       dict(meta, shards=shards, complete=True, **summary))
    return
  for kind, path in npy_paths(output, shapes).items():
    shape, dtype = shapes[kind]
    writers.concatenate([os.path.join(folder, s[kind]) for s in shards], path,
                        shape, dtype)
  shutil.rmtree(folder)
def encode_to_file(encoder, texts: Iterable[Any], output: str,
                   pooling: str = 'mean', *, token_states: bool = False,
                   shard_size: int = DEFAULT_SHARD_SIZE,
                   overwrite: bool = False, quiet: bool = True,
                   total: int | None = None,
                   run_args: Mapping[str, Any] | None = None,
                   **stream_args) -> dict[str, Any]:
  """Streams TEXTS through ENCODER into OUTPUT (see the module docstring).

  With several JAX processes every process calls it with the same arguments
  and the whole input; each encodes its own shards on its local devices.

  Args:
    encoder: From ``load_encoder``.
    texts: Strings or (A, B) pairs, any iterable (read once, never held).
    output: 'PATH.npy', or a folder for shards and meta.json.
    pooling: 'mean' or 'cls'.
    token_states: Also write the per-token states and attention mask.
    shard_size: Texts per shard: the unit of work of a process and of a
      resumed run.
    overwrite: Replace an existing output.
    quiet: No progress line.
    total: How many texts there are (for the progress line's ETA).
    run_args: What identifies the run besides the above (e.g. the inputs and
      checkpoint), compared when unfinished work is resumed.
    **stream_args: ``pack_length``, ``batch_tokens``, ``window``, ``devices``
      (see ``stream.run``; default this process's devices).

  Returns:
    The summary (also stored in meta.json for a folder output): num_texts,
    dim, tokens, truncated, empty_texts, padding_share, resumed_from (texts
    of complete shards found), encoded, processes. With several processes
    process 0 returns the whole run's; the others, their own counts (but
    num_texts is the output's).
  """
  if shard_size < 1:
    raise UserInputError(f'--shard_size={shard_size}: must be >= 1.')
  shapes = _shapes(encoder, token_states)
  run = {'pooling': pooling, 'max_length': encoder.max_length,
         'token_states': token_states, 'dim': encoder.hidden_size,
         'shard_size': shard_size, **(run_args or {})}
  folder = work_dir(output)
  index, count = jax.process_index(), jax.process_count()
  # Every process checks (the same files: the same verdict), then process 0
  # alone changes the folder, before any process writes a shard. The meeting
  # between the two matters: a process still checking while process 0 writes
  # meta.json would see a folder with meta.json.partial and no meta.json.
  with hosts.until('bert_jax.encode: output checked'):
    resume = check_output(output, run, shapes, overwrite)
  meta = {'format': writers.FORMAT, 'run': run, 'shard_size': shard_size,
          'complete': False}
  with hosts.until('bert_jax.encode: output ready'):
    if index == 0:
      os.makedirs(folder, exist_ok=True)
      if not resume:
        _clear_folder(folder)
        writers.write_json(os.path.join(folder, writers.META), meta)
  with hosts.until('bert_jax.encode: shards written'):
    done = writers.complete_shards(folder, shapes)
    part = hosts.Slice(shard_size, index, count, done)
    writer = writers.ShardedWriter(folder, shapes, shard_size, part.indices())
    mine = sum(rows for i, rows in done.items() if i % count == index)
    progress = None if quiet else Progress(total if count == 1 else None,
                                           start_at=mine)
    try:
      summary = stream.run(encoder, part.texts(texts), writer, pooling,
                           token_states, progress=progress, **stream_args)
    except BaseException:
      writer.abort()
      raise
    writer.close()
    if progress is not None:
      progress.close()
    summary['resumed_from'] = mine
    summary['encoded'] = summary['num_texts']
    writers.write_json(os.path.join(folder, SUMMARY.format(index)), summary)
  with hosts.until('bert_jax.encode: output written'):
    if index == 0:
      summary, shards = _merge(folder, count, part.num_texts, shard_size,
                               shapes)
      summary['processes'] = count
      _finish(output, folder, meta, summary, shards, shapes)
  if index != 0:
    summary = dict(summary, num_texts=part.num_texts, processes=count)
  return dict(summary, output=output)
