"""Writers that stream rows to ``.npy`` files, and a sharded output folder.

``NpyWriter`` appends rows as they come and fixes the header's row count when
closed, so a file of any size is written with memory for one window only; the
header has a fixed size (128 bytes), so rewriting it moves nothing. The file
is written as ``NAME.partial`` and renamed when complete: a file with the
final name is always whole, and ``np.load(path, mmap_mode='r')`` reads it.

``ShardedWriter`` writes ``DIR/vectors-00000.npy`` ... of ``shard_size`` rows
each, the same way: a shard with its final name is complete
(``complete_shards``), so a run that is stopped can be resumed after its
complete shards, and several processes can fill one folder, each its own
shards. ``concatenate`` joins shards into one file.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
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

  def write_bytes(self, data) -> None:
    """Appends raw C-order bytes (no copy); the caller adds to ``rows``."""
    self._f.write(data)

  def close(self) -> None:
    self._f.seek(0)
    self._f.write(_header(self.dtype, (self.rows, *self.row_shape)))
    self._f.close()
    os.replace(self._partial, self.path)

  def abort(self) -> None:
    """Closes without finishing: the .partial file stays (never renamed)."""
    self._f.close()


def write_json(path: str, obj: Any) -> None:
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


def shard_path(directory: str, kind: str, index: int) -> str:
  return os.path.join(directory, f'{kind}-{index:05d}.npy')


def _read_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
  """(shape, fortran_order, dtype) of the open .npy file F, left at its data."""
  version = np.lib.format.read_magic(f)
  read = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
          np.lib.format.read_array_header_2_0)
  return read(f)


def npy_rows(path: str) -> int:
  """The row count in a .npy file's header (the data is not read)."""
  with open(path, 'rb') as f:
    return _read_header(f)[0][0]


def complete_shards(directory: str, kinds) -> dict[int, int]:
  """Shard index -> rows, for the shards whose every kind has its final name.

  A shard file gets its final name only when closed, and it is closed only
  when full or at the input's end, so these are the shards a rerun skips.
  """
  found: dict[int, int] = {}
  first, *others = kinds
  for path in glob.glob(os.path.join(directory, f'{first}-*.npy')):
    index = os.path.basename(path)[len(first) + 1:-len('.npy')]
    if not index.isdigit():
      continue
    index = int(index)
    if all(os.path.exists(shard_path(directory, k, index)) for k in others):
      found[index] = npy_rows(path)
  return dict(sorted(found.items()))


class ShardedWriter:
  """Rows into shards of SHARD_SIZE rows, ``DIR/vectors-00000.npy`` ...

  INDICES are the shard numbers to fill, in order (every process of a
  multi-process run fills its own; a resumed run skips the complete ones).
  Each shard is full but the last one of the input, which ``close`` ends.
  """

  def __init__(self, directory: str, shapes: dict[str, tuple[tuple[int, ...],
                                                              Any]],
               shard_size: int, indices: Iterator[int]):
    """SHAPES: kind -> (row shape, dtype)."""
    if shard_size < 1:
      raise UserInputError(f'--shard_size={shard_size}: must be >= 1.')
    os.makedirs(directory, exist_ok=True)
    self.directory = directory
    self.shapes = shapes
    self.shard_size = shard_size
    self.rows = 0  # written by this writer
    self._indices = iter(indices)
    self._open: dict[str, NpyWriter] | None = None

  def _start_shard(self) -> None:
    index = next(self._indices)
    self._open = {kind: NpyWriter(shard_path(self.directory, kind, index),
                                  shape, dtype)
                  for kind, (shape, dtype) in self.shapes.items()}

  def _finish_shard(self) -> None:
    for w in self._open.values():
      w.close()
    self._open = None

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
      self.rows += take
      if have + take == self.shard_size:
        self._finish_shard()

  def close(self) -> None:
    if self._open is not None:
      self._finish_shard()

  def abort(self) -> None:
    """Leaves an open shard as .partial files (a rerun redoes it)."""
    if self._open is not None:
      for w in self._open.values():
        w.abort()


def concatenate(sources: list[str], path: str, row_shape: tuple[int, ...],
                dtype, chunk_bytes: int = 4 << 20) -> None:
  """Writes the rows of the .npy files SOURCES, in order, into PATH.

  The bytes are copied through one buffer of CHUNK_BYTES: neither a source
  nor the output is mapped or held, so joining takes the same memory for any
  number of rows (a memory map's touched pages would count in the process's
  resident memory, as would a copy of each block).
  """
  dtype = np.dtype(dtype)
  out = NpyWriter(path, row_shape, dtype)
  buffer = bytearray(chunk_bytes)
  try:
    for src in sources:
      with open(src, 'rb') as f:
        shape, fortran, src_dtype = _read_header(f)
        if (tuple(shape[1:]) != tuple(row_shape) or src_dtype != dtype
            or (fortran and len(shape) > 1)):
          raise ValueError(f'{src}: rows {shape[1:]} {src_dtype}, expected '
                           f'{tuple(row_shape)} {dtype} (C order).')
        left = int(np.prod(shape)) * dtype.itemsize
        view = memoryview(buffer)
        while left:
          got = f.readinto(view[:min(left, chunk_bytes)])
          if not got:
            raise ValueError(f'{src}: {left} bytes short of its header\'s '
                             f'shape {shape}.')
          out.write_bytes(view[:got])
          left -= got
        out.rows += shape[0]
  except BaseException:
    out.abort()
    raise
  out.close()
