"""Writers that stream rows to ``.npy`` files, and a sharded output folder.

``NpyWriter`` appends rows as they come and fixes the header's row count when
closed, so a file of any size is written with memory for one window only; the
header has a fixed size (128 bytes), so rewriting it moves nothing. The file
is written as ``NAME.partial`` and renamed when complete: a file with the
final name is always whole, and ``np.load(path, mmap_mode='r')`` reads it.

``ShardedWriter`` writes ``DIR/vectors-00000.npy`` ... of ``shard_size`` rows
each and a ``DIR/meta.json`` that lists the complete shards; it is rewritten
(atomically) after every shard, so a run that is stopped can be resumed after
its last complete shard (``resume_point``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from bert_jax.errors import UserInputError

HEADER_BYTES = 128  # magic (6) + version (2) + length (2) + dict, padded
META = 'meta.json'
FORMAT = 'bert_jax.encode/1'
# What each output holds: vectors [N, D] float32; with token states also
# token_states [N, L, D] float32 and attention_mask [N, L] int8.
KINDS = ('vectors', 'token_states', 'attention_mask')


def _header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
  """A version 1.0 .npy header of exactly HEADER_BYTES bytes."""
  d = {'descr': np.lib.format.dtype_to_descr(np.dtype(dtype)),
       'fortran_order': False, 'shape': tuple(shape)}
  text = repr(d).encode('latin1')
  room = HEADER_BYTES - 10 - 1  # the dict is followed by spaces and '\n'
  if len(text) > room:
    raise ValueError(f'.npy header for shape {shape} does not fit.')
  text = text + b' ' * (room - len(text)) + b'\n'
  return b'\x93NUMPY\x01\x00' + len(text).to_bytes(2, 'little') + text


class NpyWriter:
  """Appends [n, *row_shape] blocks to one .npy file; ``close`` finishes it."""

  def __init__(self, path: str, row_shape: tuple[int, ...], dtype=np.float32):
    self.path = path
    self.row_shape = tuple(row_shape)
    self.dtype = np.dtype(dtype)
    self.rows = 0
    self._partial = path + '.partial'
    self._f = open(self._partial, 'wb')
    self._f.write(_header(self.dtype, (0, *self.row_shape)))

  def write(self, block: np.ndarray) -> None:
    block = np.ascontiguousarray(block, self.dtype)
    if block.shape[1:] != self.row_shape:
      raise ValueError(f'rows of shape {block.shape[1:]}, expected '
                       f'{self.row_shape}.')
    self._f.write(block.tobytes())
    self.rows += block.shape[0]

  def close(self) -> None:
    self._f.seek(0)
    self._f.write(_header(self.dtype, (self.rows, *self.row_shape)))
    self._f.close()
    os.replace(self._partial, self.path)

  def abort(self) -> None:
    """Closes without finishing: the .partial file stays (never renamed)."""
    self._f.close()


def _write_json(path: str, obj: Any) -> None:
  tmp = path + '.partial'
  with open(tmp, 'w', encoding='utf-8') as f:
    json.dump(obj, f, indent=1)
    f.write('\n')
  os.replace(tmp, path)


def read_meta(directory: str) -> dict[str, Any] | None:
  path = os.path.join(directory, META)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise UserInputError(f'{path}:{e.lineno}: not valid JSON ({e.msg}); '
                         'remove the folder or pass --overwrite.') from None


class ShardedWriter:
  """Rows into shards of SHARD_SIZE rows in DIRECTORY, listed in meta.json."""

  def __init__(self, directory: str, shapes: dict[str, tuple[tuple[int, ...],
                                                              Any]],
               shard_size: int, meta: dict[str, Any],
               done: list[dict[str, Any]] | None = None):
    """SHAPES: kind -> (row shape, dtype); DONE: shards of a resumed run."""
    if shard_size < 1:
      raise UserInputError(f'--shard_size={shard_size}: must be >= 1.')
    os.makedirs(directory, exist_ok=True)
    self.directory = directory
    self.shapes = shapes
    self.shard_size = shard_size
    self.meta = dict(meta, format=FORMAT, shard_size=shard_size,
                     shards=list(done or []), complete=False)
    self.rows = sum(s['rows'] for s in self.meta['shards'])
    self._open: dict[str, NpyWriter] | None = None

  def _start_shard(self) -> None:
    index = len(self.meta['shards'])
    self._open = {
        kind: NpyWriter(os.path.join(self.directory, f'{kind}-{index:05d}.npy'),
                        shape, dtype)
        for kind, (shape, dtype) in self.shapes.items()}

  def _finish_shard(self) -> None:
    files = {}
    for kind, w in self._open.items():
      w.close()
      files[kind] = os.path.basename(w.path)
    rows = next(iter(self._open.values())).rows
    self.meta['shards'].append({'first': self.rows, 'rows': rows, **files})
    self.rows += rows
    self._open = None
    self._save()

  def _save(self) -> None:
    self.meta['num_texts'] = self.rows
    _write_json(os.path.join(self.directory, META), self.meta)

  def write(self, blocks: dict[str, np.ndarray]) -> None:
    """Appends the same rows of every kind (e.g. vectors and token states)."""
    n, at = len(next(iter(blocks.values()))), 0
    while at < n:
      if self._open is None:
        self._start_shard()
      have = next(iter(self._open.values())).rows
      take = min(n - at, self.shard_size - have)
      for kind, w in self._open.items():
        w.write(blocks[kind][at:at + take])
      at += take
      if have + take == self.shard_size:
        self._finish_shard()

  def close(self, summary: dict[str, Any] | None = None) -> None:
    if self._open is not None:
      self._finish_shard()
    self.meta['complete'] = True
    self.meta.update(summary or {})
    self._save()

  def abort(self) -> None:
    if self._open is not None:
      for w in self._open.values():
        w.abort()


class FileWriter:
  """Rows into OUT.npy (and OUT.token_states.npy, OUT.attention_mask.npy)."""

  def __init__(self, path: str, shapes: dict[str, tuple[tuple[int, ...], Any]]):
    self.paths = self.paths_for(path, shapes)
    self._writers = {kind: NpyWriter(self.paths[kind], shape, dtype)
                     for kind, (shape, dtype) in shapes.items()}
    self.rows = 0

  @staticmethod
  def paths_for(path: str, kinds) -> dict[str, str]:
    return {kind: path if kind == 'vectors' else
            f'{path[:-len(".npy")]}.{kind}.npy' for kind in kinds}

  def write(self, blocks: dict[str, np.ndarray]) -> None:
    for kind, w in self._writers.items():
      w.write(blocks[kind])
    self.rows += len(next(iter(blocks.values())))

  def close(self, summary: dict[str, Any] | None = None) -> None:
    del summary
    for w in self._writers.values():
      w.close()

  def abort(self) -> None:
    for w in self._writers.values():
      w.abort()
