"""``encode_to_file``: an iterable of texts to a .npy file or a shard folder.

An output ending in ``.npy`` is one file ``[N, D]`` float32 (with
``token_states``, also ``OUT.token_states.npy`` [N, L, D] and
``OUT.attention_mask.npy`` [N, L] int8, L = max_length). Anything else is a
folder of shards and ``meta.json``; a folder left by an interrupted run with
the same arguments is resumed after its last complete shard. An existing
output is otherwise refused unless ``overwrite``.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from bert_jax.encode import stream
from bert_jax.encode import writers
from bert_jax.encode.progress import Progress
from bert_jax.errors import UserInputError

DEFAULT_SHARD_SIZE = 100_000


def _shapes(encoder, token_states: bool) -> dict[str, tuple[tuple[int, ...],
                                                            Any]]:
  d, length = encoder.hidden_size, encoder.max_length
  shapes = {'vectors': ((d,), np.float32)}
  if token_states:
    shapes['token_states'] = ((length, d), np.float32)
    shapes['attention_mask'] = ((length,), np.int8)
  return shapes


def _clear_folder(directory: str) -> None:
  """Removes what an encode wrote there (shards, meta.json), nothing else."""
  for kind in writers.KINDS:
    for p in glob.glob(os.path.join(directory, f'{kind}-*.npy*')):
      os.remove(p)
  for p in (writers.META, writers.META + '.partial'):
    if os.path.exists(os.path.join(directory, p)):
      os.remove(os.path.join(directory, p))


def open_output(output: str, shapes, run: dict[str, Any], shard_size: int,
                overwrite: bool):
  """(writer, texts already done) for OUTPUT; refuses to clobber silently."""
  if output.endswith('.npy'):
    if os.path.isdir(output):
      raise UserInputError(f'--output={output}: is a directory; a .npy output '
                           'is a file.')
    paths = writers.FileWriter.paths_for(output, shapes)
    exists = [p for p in paths.values() if os.path.exists(p)]
    if exists and not overwrite:
      raise UserInputError(f'--output={output}: {exists[0]} exists; pass '
                           '--overwrite to replace it.')
    writer = writers.FileWriter(output, shapes)
    return writer, 0
  if os.path.isfile(output):
    raise UserInputError(f'--output={output}: is a file; give a .npy path or '
                         'a folder for shards.')
  meta = writers.read_meta(output) if os.path.isdir(output) else None
  done = []
  if overwrite and os.path.isdir(output):
    _clear_folder(output)
  elif meta is not None:
    if meta.get('complete'):
      raise UserInputError(f'--output={output}: holds a complete encode '
                           f'({meta.get("num_texts")} texts, meta.json); pass '
                           '--overwrite to redo it, or choose another folder.')
    if meta.get('run') != run:
      old = meta.get('run') or {}
      diff = sorted(k for k in set(old) | set(run) if old.get(k) != run.get(k))
      raise UserInputError(f'--output={output}: holds an unfinished encode run '
                           f'with other arguments (differs in {diff}); rerun '
                           'with the same arguments to resume, or pass '
                           '--overwrite.')
    done = meta['shards']
  elif os.path.isdir(output) and os.listdir(output):
    raise UserInputError(f'--output={output}: the folder is not empty and holds '
                         'no encode meta.json; choose an empty or new folder.')
  writer = writers.ShardedWriter(output, shapes, shard_size, {'run': run},
                                 done)
  return writer, writer.rows


def encode_to_file(encoder, texts: Iterable[Any], output: str,
                   pooling: str = 'mean', *, token_states: bool = False,
                   shard_size: int = DEFAULT_SHARD_SIZE,
                   overwrite: bool = False, quiet: bool = True,
                   total: int | None = None,
                   run_args: Mapping[str, Any] | None = None,
                   **stream_args) -> dict[str, Any]:
  """Streams TEXTS through ENCODER into OUTPUT (see the module docstring).

  Args:
    encoder: From ``load_encoder``.
    texts: Strings or (A, B) pairs, any iterable (read once, never held).
    output: 'PATH.npy', or a folder for shards and meta.json.
    pooling: 'mean' or 'cls'.
    token_states: Also write the per-token states and attention mask.
    shard_size: Rows per shard (folder output).
    overwrite: Replace an existing output.
    quiet: No progress line.
    total: How many texts there are (for the progress line's ETA).
    run_args: What identifies the run besides the above (e.g. the inputs and
      checkpoint), compared when a folder is resumed.
    **stream_args: ``pack_length``, ``batch_tokens``, ``window``, ``devices``
      (see ``stream.run``).

  Returns:
    The summary (also stored in meta.json for a folder output): num_texts,
    dim, tokens, truncated, empty_texts, padding_share, resumed_from.
  """
  run = {'pooling': pooling, 'max_length': encoder.max_length,
         'token_states': token_states, 'dim': encoder.hidden_size,
         'shard_size': shard_size, **(run_args or {})}
  writer, skip = open_output(output, _shapes(encoder, token_states), run,
                             shard_size, overwrite)
  progress = None if quiet else Progress(total, start_at=skip)
  try:
    summary = stream.run(encoder, itertools.islice(texts, skip, None), writer,
                         pooling, token_states, progress=progress,
                         **stream_args)
  except BaseException:
    writer.abort()
    raise
  summary['resumed_from'] = skip
  summary['num_texts'] += skip
  writer.close(summary)
  if progress is not None:
    progress.close()
  return dict(summary, output=output)
