"""Work units of a corpus: planned from the input alone, read one at a time.

Preparing a corpus bigger than memory means never holding it whole. The
corpus is cut into units that depend only on the input and the unit size,
never on the number of workers, so one worker, a process pool and a Beam
cluster cut it the same way and write the same bytes:

* text files (BERT format: one sentence a line, a blank line between
  documents): each file is cut into byte ranges of about ``unit_bytes``, each
  range ending at a blank line, so no document spans two units. Planning seeks
  to each cut and reads forward to the next blank line: it never reads the
  file whole (a file with no blank line at all is one unit);
* a TFDS split: ranges of ``tfds_records_per_unit`` records (one record is one
  document), read by random access (array_record);
* the built-in corpus: ranges of its documents, about ``unit_bytes`` each.

A unit is a small JSON-able dict; `read_documents` streams its documents.
Bytes that are not UTF-8 fail with the file, line and offset by default
(``invalid_utf8='error'``, as every reader of bert_jax does), or are replaced
with U+FFFD and counted (``'replace'``). Lines longer than ``max_line_bytes``
(a minified file, a base64 blob: not sentences) are skipped and counted.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
import re
from typing import Any

from bert_jax import storage
from bert_jax.data import text_files
from bert_jax.data import tfds_source
from bert_jax.data.pretrain import corpora
from bert_jax.errors import UserInputError

Unit = dict[str, Any]

_BLANK_LINE_RE = re.compile(rb'\n[ \t\r\f\v]*\n')
_SCAN_BLOCK = 1 << 20


def plan(spec: str, *, unit_bytes: int = 4 << 20,
         tfds_records_per_unit: int = 1000, text_key: str = 'text',
         data_dir: str | None = None) -> list[Unit]:
  """The units of corpus SPEC (a `corpora.load_corpus` spec), in order.

  Raises:
    UserInputError: An unknown spec form, or an empty corpus file.
    InputFileNotFoundError: A path or glob that matches no file.
    DatasetUnavailableError: An unknown or unprepared TFDS dataset.
  """
  if unit_bytes < 1024:
    raise ValueError(f'unit size must be >= 1 KiB, got {unit_bytes} bytes')
  spec = spec.strip()
  if spec == 'builtin':
    return _plan_builtin(unit_bytes)
  if spec.startswith('tfds:'):
    return _plan_tfds(spec, tfds_records_per_unit, text_key, data_dir)
  if spec and (not corpora._SCHEME_RE.match(spec)  # pylint: disable=protected-access
               or spec.split('://', 1)[0] in storage.URI_SCHEMES):
    units = []
    for path in corpora.resolve_paths(spec):
      units.extend(_plan_file(path, unit_bytes))
    return units
  raise UserInputError(f'unknown corpus spec {spec!r}; valid forms: ' +
                       ', '.join(corpora.SPEC_FORMS))


def total_bytes(units: list[Unit]) -> int | None:
  """Bytes of text the units hold, when known (files); else None."""
  if all(u['kind'] == 'file' for u in units):
    return sum(u['end'] - u['start'] for u in units)
  return None


def read_documents(unit: Unit, stats: dict[str, int], *,
                   invalid_utf8: str = 'error',
                   max_line_bytes: int = 1 << 20) -> Iterator[list[str]]:
  """Yields the unit's documents (lists of sentences); counts into STATS.

  STATS gains 'bytes', 'documents', 'replaced_bytes' and 'long_lines'.
  """
  if invalid_utf8 not in ('error', 'replace'):
    raise ValueError(f"invalid_utf8 must be 'error' or 'replace', got "
                     f'{invalid_utf8!r}')
  for key in ('bytes', 'documents', 'replaced_bytes', 'long_lines'):
    stats.setdefault(key, 0)
  if unit['kind'] == 'file':
    docs = _file_unit_documents(unit, stats, invalid_utf8, max_line_bytes)
  elif unit['kind'] == 'tfds':
    docs = _tfds_unit_documents(unit, stats)
  elif unit['kind'] == 'builtin':
    docs = _builtin_unit_documents(unit, stats)
  else:
    raise ValueError(f'unknown unit kind {unit["kind"]!r}')
  for doc in docs:
    if doc:
      stats['documents'] += 1
      yield doc


# --- Text files. ---


def _plan_file(path: str, unit_bytes: int) -> list[Unit]:
  size = storage._epath(path).stat().length  # pylint: disable=protected-access
  if size == 0:
    raise UserInputError(f'{path}: corpus file is empty; expected one sentence '
                         'a line, documents separated by blank lines.')
  cuts = [0]
  with storage.open_file(path, 'rb') as f:
    target = unit_bytes
    while target < size:
      cut = _next_blank_line_end(f, target)
      if cut is None or cut >= size:
        break
      cuts.append(cut)
      target = cut + unit_bytes
  cuts.append(size)
  return [{'kind': 'file', 'path': path, 'start': a, 'end': b}
          for a, b in zip(cuts[:-1], cuts[1:])]


def _next_blank_line_end(f, pos: int) -> int | None:
  """Offset just after the first blank line that starts at or after POS-1."""
  f.seek(max(0, pos - 1))
  base, tail = max(0, pos - 1), b''
  while True:
    block = f.read(_SCAN_BLOCK)
    if not block:
      return None
    data = tail + block
    match = _BLANK_LINE_RE.search(data)
    if match:
      return base - len(tail) + match.end()
    # Keep a little of the end: a blank line may straddle two blocks.
    tail = data[-64:]
    base += len(block)


def _file_unit_documents(unit, stats, invalid_utf8, max_line_bytes):
  path, start, end = unit['path'], unit['start'], unit['end']
  with storage.open_file(path, 'rb') as f:
    f.seek(start)
    raw = f.read(end - start)
  stats['bytes'] += len(raw)
  skip = 0
  if start == 0:
    skip = text_files._check_start(path, raw[:4])  # pylint: disable=protected-access
  text = _decode(path, raw, skip, start, invalid_utf8, stats)
  del raw
  doc = []
  for line in text.split('\n'):
    # A character is at most 4 bytes: encode only lines that may be too long.
    if len(line) * 4 > max_line_bytes and len(line.encode()) > max_line_bytes:
      stats['long_lines'] += 1
      continue
    line = line.strip()
    if line:
      doc.append(line)
    elif doc:
      yield doc
      doc = []
  if doc:
    yield doc


def _decode(path, raw, skip, start, invalid_utf8, stats) -> str:
  body = memoryview(raw)[skip:]
  try:
    text = str(body, 'utf-8')
    if '\x00' not in text:
      return text
  except UnicodeDecodeError:
    pass
  if invalid_utf8 == 'error':
    # Line numbers count from the file's start: only paid on failure.
    line = 1
    if start:
      with storage.open_file(path, 'rb') as f:
        left = start
        while left:
          block = f.read(min(left, _SCAN_BLOCK))
          line += block.count(b'\n')
          left -= len(block)
    text_files._decode(path, bytes(body), line, start + skip)  # pylint: disable=protected-access
  text = str(body, 'utf-8', errors='replace')
  replaced = (text.count('\ufffd') - bytes(body).count(b'\xef\xbf\xbd') +
              text.count('\x00'))
  stats['replaced_bytes'] += replaced
  return text.replace('\x00', ' ')


# --- TFDS. ---


def _parse_tfds(spec: str) -> tuple[str, str]:
  match = corpora._TFDS_RE.match(spec)  # pylint: disable=protected-access
  if not match:
    raise UserInputError(
        f'bad TFDS corpus spec {spec!r}; expected '
        "'tfds:NAME[:SPLIT]', e.g. 'tfds:wikipedia/20230601.en:train'")
  return match['name'], match['split'] or 'train'


def _plan_tfds(spec, per_unit, text_key, data_dir) -> list[Unit]:
  if per_unit < 1:
    raise ValueError(f'records per unit must be >= 1, got {per_unit}')
  name, split = _parse_tfds(spec)
  n = len(tfds_source.open_split(name, split, data_dir))
  return [{'kind': 'tfds', 'name': name, 'split': split, 'data_dir': data_dir,
           'text_key': text_key, 'start': a, 'end': min(a + per_unit, n)}
          for a in range(0, n, per_unit)]


def _tfds_unit_documents(unit, stats):
  source = tfds_source.open_split(unit['name'], unit['split'],
                                  unit['data_dir'])
  key = unit['text_key']
  for i in range(unit['start'], unit['end']):
    record = source[i]
    if key not in record:
      raise UserInputError(f'tfds:{unit["name"]}: records have no field '
                           f'{key!r}; fields: {sorted(record)}')
    text = tfds_source.as_text(record[key])
    stats['bytes'] += len(text.encode())
    yield corpora.split_sentences(text)


# --- The built-in corpus. ---

_BUILTIN: list[list[str]] = []


def _builtin_docs() -> list[list[str]]:
  if not _BUILTIN:  # Seconds to build: once per process.
    _BUILTIN.extend(d for d in corpora.load_corpus('builtin'))
  return _BUILTIN


def _plan_builtin(unit_bytes) -> list[Unit]:
  docs, units, start, size = _builtin_docs(), [], 0, 0
  for i, doc in enumerate(docs):
    size += sum(len(s) + 1 for s in doc) + 1
    if size >= unit_bytes:
      units.append({'kind': 'builtin', 'start': start, 'end': i + 1})
      start, size = i + 1, 0
  if start < len(docs):
    units.append({'kind': 'builtin', 'start': start, 'end': len(docs)})
  return units


def _builtin_unit_documents(unit, stats):
  for doc in _builtin_docs()[unit['start']:unit['end']]:
    stats['bytes'] += sum(len(s.encode()) + 1 for s in doc) + 1
    yield doc
