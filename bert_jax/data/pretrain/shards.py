"""Prepared pretraining shards: the record format, writing one, reading them.

A prepared directory holds `meta.json` and `<split>-UUUUU-of-NNNNN.array_record`
shards, one per work unit and split (`bert_jax.data.pretrain.units`). Each
record is one row as fixed-width little-endian int32: the features in
`meta.json`'s order, each flattened (for L = 128 unpacked: input_ids,
token_type_ids, attention_mask, word_ids, nsp_label = 4 * 128 + 1 ints). The
layout needs no parser and decodes a whole shard with one `np.frombuffer`.
`load_prepared` reads a split into memory; `PreparedSource` reads records at
random from disk, for corpora that do not fit in memory (what training uses).
Both feed `bert_jax.data.loader.make_loader`.
"""

from __future__ import annotations

from collections.abc import Sequence
import hashlib
import json
import os
from typing import Any

from array_record.python import array_record_data_source
from array_record.python import array_record_module
import numpy as np

from bert_jax import storage
from bert_jax.errors import UserInputError

FORMAT = 'bert_jax.pretraining_examples/1'
META_FILE = 'meta.json'
# One record per chunk, so that a record can be read without its neighbours.
_WRITER_OPTIONS = 'group_size:1,zstd:1'  # zstd:1: brotli's size, 1.5x faster
_PREPARE_CMD = 'python -m bert_jax.data.pretrain.prepare'


def shard_name(split: str, unit: int, num_units: int) -> str:
  return f'{split}-{unit:05d}-of-{num_units:05d}.array_record'


def features_of(examples: dict[str, np.ndarray]) -> list[dict[str, Any]]:
  return [{'name': k, 'shape': list(v.shape[1:])} for k, v in examples.items()]


def write_shard(examples: dict[str, np.ndarray], local_path: str
                ) -> dict[str, Any]:
  """Writes EXAMPLES' rows to LOCAL_PATH whole or not at all.

  The file is written under a temporary name and renamed, so a killed writer
  never leaves a shard that looks finished.

  Returns:
    ``{'file', 'rows', 'bytes', 'blake2b'}`` of the written file.
  """
  rows = np.concatenate(
      [v.reshape(len(v), -1) for v in examples.values()], axis=1).astype('<i4')
  tmp = local_path + '.tmp'
  writer = array_record_module.ArrayRecordWriter(tmp, _WRITER_OPTIONS)
  try:
    for row in rows:
      writer.write(row.tobytes())
  finally:
    writer.close()
  os.replace(tmp, local_path)
  return {'file': os.path.basename(local_path), 'rows': len(rows),
          'bytes': os.path.getsize(local_path),
          'blake2b': file_digest(local_path)}


def file_digest(path: str) -> str:
  """blake2b of a file's bytes (hex), read in blocks."""
  h = hashlib.blake2b(digest_size=16)
  with storage.open_file(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def load_prepared(directory: str,
                  split: str = 'train') -> dict[str, np.ndarray]:
  """Reads a prepared split into memory: `{name: int32 array [N, ...]}`."""
  meta = read_meta(directory, split)
  records = []
  for name in meta['splits'][split]['files']:
    reader = array_record_module.ArrayRecordReader(
        storage.cached_copy(os.path.join(directory, name)))
    try:
      records.extend(reader.read_all())
    finally:
      reader.close()
  return decode(records, meta['features'])


class PreparedSource:
  """A grain `RandomAccessDataSource` over a prepared split, read from disk.

  Records are dicts of one example's features; `take` reads many at once.
  """

  def __init__(self, directory: str, split: str = 'train'):
    self._meta = read_meta(directory, split)
    self._directory, self._split = directory, split
    # array_record reads local files only: remote shards are cached locally.
    self._source = array_record_data_source.ArrayRecordDataSource(
        [storage.cached_copy(os.path.join(directory, f))
         for f in self._meta['splits'][split]['files']])

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {k: v[0] for k, v in self.take([index]).items()}

  def take(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    records = self._source.__getitems__([int(i) for i in indices])
    return decode(records, self._meta['features'])

  def __repr__(self) -> str:
    return (f'PreparedSource({self._directory!r}, split={self._split!r}, '
            f'num_rows={len(self)})')


def read_meta(directory: str, split: str | None = None) -> dict[str, Any]:
  """Reads and checks `meta.json`; with `split`, checks the split exists."""
  path = os.path.join(directory, META_FILE)
  if not storage.exists(path):
    raise FileNotFoundError(f'no prepared examples at {directory}: {path} is '
                            f'missing (run {_PREPARE_CMD})')
  try:
    meta = json.loads(storage.read_text(path))
  except json.JSONDecodeError as e:
    raise UserInputError(f'{path}:{e.lineno}: not valid JSON ({e.msg}); '
                         f'rebuild it with {_PREPARE_CMD}') from e
  if meta.get('format') != FORMAT:
    raise UserInputError(f'{path} has format {meta.get("format")!r}, '
                         f'expected {FORMAT!r}')
  if split is not None:
    if split not in meta['splits']:
      raise UserInputError(f'{directory} has no split {split!r}; it has '
                           f'{sorted(meta["splits"])}')
    if not meta['splits'][split]['files']:
      raise UserInputError(f'{directory}: split {split!r} has no rows')
    for name in meta['splits'][split]['files']:
      if not storage.exists(os.path.join(directory, name)):
        raise FileNotFoundError(f'shard {os.path.join(directory, name)} '
                                f'listed in {path} is missing')
  return meta


def decode(records: Sequence[bytes],
           features: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
  """Fixed-width int32 records -> `{name: array [N, *shape]}`."""
  sizes = [int(np.prod(f['shape'], dtype=np.int64)) for f in features]
  width = sum(sizes)
  flat = np.frombuffer(b''.join(records), '<i4')
  if flat.size != width * len(records):
    raise UserInputError(f'records are not {width} int32 each, as meta.json '
                         'says; the shards and meta.json do not match')
  rows = flat.reshape(len(records), width).astype(np.int32)
  out, start = {}, 0
  for feature, size in zip(features, sizes):
    out[feature['name']] = rows[:, start:start + size].reshape(
        len(records), *feature['shape'])
    start += size
  return out


def write_json_atomic(path: str, obj: Any) -> None:
  """JSON to a local PATH via a temporary file and a rename."""
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(json.dumps(obj, indent=2, sort_keys=True) + '\n')
  os.replace(tmp, path)
