"""The encode command's inputs, read as one stream of texts in input order.

An input is a path, a glob (its matches in sorted order), or
``tfds:NAME[:SPLIT]`` (split default 'train'); several are read one after
another. Each path's form comes from its extension:

* ``.tsv`` / ``.csv`` (header row) and ``.jsonl``: the column or field named
  by ``--field`` (``--field question,passage`` gives sentence pairs); blank
  rows are skipped, as every local reader here does;
* anything else: UTF-8 text, one text per line; an empty line is kept as an
  empty text (``[CLS] [SEP]``), so row i of the output is line i.

Text files go through ``bert_jax.data.text_files`` and TSV/CSV/JSONL through
``bert_jax.data.local_files``, so invalid UTF-8, a bad JSONL line or a row of
the wrong width fails the same way as in training: one line naming file:line.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from bert_jax.data.finetune import local_files
from bert_jax.data import text_files
from bert_jax.data import tfds_source
from bert_jax.errors import InputFileNotFoundError, UserInputError

TFDS_PREFIX = 'tfds:'
TFDS_DEFAULT_FIELD = 'text'
_VERSION_RE = re.compile(r'^\d+(\.\d+)*$')


@dataclasses.dataclass(frozen=True)
class Source:
  """One input: kind 'text', 'table' (tsv/csv/jsonl) or 'tfds'."""
  kind: str
  path: str  # the file, or the TFDS name
  split: str = ''


def parse_fields(field: str | None) -> tuple[str, ...]:
  if not field:
    return ()
  fields = tuple(f.strip() for f in field.split(','))
  if len(fields) > 2 or not all(fields):
    raise UserInputError(f'--field={field!r}: give one field, or two comma '
                         'separated for sentence pairs (e.g. "question,passage").')
  return fields


def parse_tfds(spec: str) -> Source:
  """'tfds:NAME[:SPLIT]'; a NAME may carry ':VERSION' (digits and dots)."""
  parts = spec[len(TFDS_PREFIX):].split(':')
  if not parts[0]:
    raise UserInputError(f'--input={spec!r}: expected tfds:NAME[:SPLIT], e.g. '
                         'tfds:imdb_reviews:test.')
  split = 'train'
  if len(parts) > 1 and not _VERSION_RE.match(parts[-1]):
    split = parts.pop()
  return Source('tfds', ':'.join(parts), split)


def resolve(inputs: Sequence[str]) -> list[Source]:
  """The sources of INPUTS, checked now (a missing file fails before loading)."""
  if not inputs:
    raise UserInputError('--input: give at least one file, glob or '
                         'tfds:NAME[:SPLIT].')
  sources = []
  for spec in inputs:
    if spec.startswith(TFDS_PREFIX):
      sources.append(parse_tfds(spec))
      continue
    if glob.has_magic(spec):
      paths = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
      if not paths:
        raise InputFileNotFoundError(f'--input={spec!r}: no file matches.')
    else:
      text_files.check_file(spec, 'input file')
      paths = [spec]
    for p in paths:
      ext = os.path.splitext(p)[1].lower()
      sources.append(Source('table' if ext in local_files.FORMATS else 'text',
                            p))
  return sources


def check_fields(sources: Sequence[Source], fields: tuple[str, ...]) -> None:
  kinds = {s.kind for s in sources}
  if fields and kinds == {'text'}:
    raise UserInputError('--field names a column of TSV/CSV/JSONL files or a '
                         'TFDS feature; the inputs are plain text files (one '
                         'text a line): drop --field.')
  if 'text' in kinds and len(kinds) > 1:
    raise UserInputError('--input mixes plain text files with TSV/CSV/JSONL or '
                         'TFDS inputs; encode them in separate runs.')
  if 'table' in kinds and not fields:
    first = next(s.path for s in sources if s.kind == 'table')
    raise UserInputError(f'{first}: a TSV/CSV/JSONL input needs --field NAME '
                         '(or --field A,B for pairs) to name the text.')


def _value(rec: dict[str, Any], field: str, where: str) -> str:
  if field not in rec:
    raise UserInputError(f'{where}: no field {field!r}; the fields are '
                         f'{sorted(rec)}. Name the text with --field.')
  value = rec[field]
  if value is None:
    return ''
  if isinstance(value, (dict, list)):
    raise UserInputError(f'{where}: field {field!r} is a '
                         f'{type(value).__name__}, not text.')
  return tfds_source.as_text(value)


def _texts_of(rec: dict[str, Any], fields: tuple[str, ...], where: str):
  if len(fields) == 1:
    return _value(rec, fields[0], where)
  return (_value(rec, fields[0], where), _value(rec, fields[1], where))


def iter_texts(sources: Sequence[Source], fields: tuple[str, ...] = (),
               tfds_data_dir: str | None = None) -> Iterator[Any]:
  """Texts (or (A, B) pairs) of SOURCES in order; errors name file:line."""
  check_fields(sources, fields)
  for s in sources:
    if s.kind == 'text':
      for _, line in text_files.iter_lines(s.path):
        yield line.rstrip('\r\n')
    elif s.kind == 'table':
      for line, rec in local_files.iter_records(s.path):
        yield _texts_of(rec, fields, f'{s.path}:{line}')
    else:
      tfds_fields = fields or (TFDS_DEFAULT_FIELD,)
      records = tfds_source.read_records(s.path, s.split, tfds_data_dir)
      for i, rec in enumerate(records):
        yield _texts_of(rec, tfds_fields, f'tfds:{s.path}:{s.split} record {i}')


def count_texts(sources: Sequence[Source]) -> int | None:
  """How many texts plain text inputs hold (for the ETA); None otherwise."""
  if any(s.kind != 'text' for s in sources):
    return None
  total = 0
  for s in sources:
    last = b'\n'
    with open(s.path, 'rb') as f:
      while block := f.read(1 << 20):
        total += block.count(b'\n')
        last = block[-1:]
    total += last != b'\n'
  return total
