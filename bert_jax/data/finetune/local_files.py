"""Local classification / regression files: TSV, CSV (header row) or JSONL.

The format comes from the extension. Text field(s) and the label field are
named by the config (``data.text_fields`` 'a' or 'a,b', ``data.label_field``).
Every problem is raised while reading, before anything compiles, and names
the file and line: a missing column, an empty file, a malformed JSONL line, a
non-numeric regression label, an evaluation label the model was not trained
on.

Classification labels are kept as strings; the label set is read from the
training file (numeric labels in numeric order, others sorted), so the same
file always gives the same class ids, and it is saved with the checkpoint.
``Example.idx`` is the (1-based) line where the example starts.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from absl import logging

from bert_jax.data import text_files
from bert_jax.data import tfds_source
from bert_jax.data.finetune.glue import Example
from bert_jax.errors import UserInputError

FORMATS = {'.tsv': 'tsv', '.csv': 'csv', '.jsonl': 'jsonl'}
# The csv module refuses fields over 128 KiB by default; a long document in
# one cell is data, not an error (a 10 MB cell reads in well under a second).
_CSV_FIELD_LIMIT = 1 << 30


@dataclasses.dataclass
class LocalData:
  """What a local classification / regression task reads from its files."""
  train: list[Example]
  eval: list[Example]
  label_names: tuple[str, ...] | None  # None = regression.


def parse_text_fields(text_fields: str) -> tuple[str, ...]:
  """'a' or 'a,b' -> field names; anything else fails naming the config field."""
  fields = tuple(f.strip() for f in str(text_fields).split(','))
  if not 1 <= len(fields) <= 2 or not all(fields):
    raise UserInputError(f'config.data.text_fields={text_fields!r}: give one text '
                     'column or two, comma separated (e.g. "sentence" or '
                     '"sentence1,sentence2").')
  return fields


def _format(path: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  if ext not in FORMATS:
    raise UserInputError(f'{path}: unknown file type {ext!r}; use one of '
                     f'{tuple(FORMATS)} (TSV/CSV need a header row).')
  return FORMATS[ext]


def iter_records(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
  """(line number, {column: value}) per record of a TSV/CSV/JSONL file.

  Raises:
    InputFileNotFoundError: If PATH does not exist.
    UserInputError: On an empty file, a row with the wrong number of cells, a
      JSONL line that is not a JSON object, or text that is not UTF-8; the
      message names file and line.
  """
  kind = _format(path)
  # BOM, CRLF and encoding are handled (and refused) in text_files.
  lines = (text for _, text in text_files.iter_lines(path))
  if kind == 'jsonl':
    yield from _jsonl_records(path, lines)
    return
  if csv.field_size_limit() < _CSV_FIELD_LIMIT:
    csv.field_size_limit(_CSV_FIELD_LIMIT)
  # TSV: no quoting, as GLUE's TSVs (which hold bare quote characters).
  reader = (csv.reader(lines, delimiter='\t', quoting=csv.QUOTE_NONE)
            if kind == 'tsv' else csv.reader(lines))
  header = _next_row(reader, path)
  if header is None:
    raise UserInputError(f'{path}: the file is empty (expected a header row '
                         'naming the columns).')
  header = [h.strip() for h in header]
  line = reader.line_num + 1
  while (row := _next_row(reader, path)) is not None:
    if row and any(c.strip() for c in row):
      if len(row) != len(header):
        raise UserInputError(
            f'{path}:{line}: {len(row)} cells but the header has '
            f'{len(header)} ({header}); expected one cell per column'
            f'{" (tab separated)" if kind == "tsv" else ""}.')
      yield line, dict(zip(header, row))
    line = reader.line_num + 1


def _next_row(reader, path: str) -> list[str] | None:
  """The next CSV/TSV row, or None at the end; csv errors name file:line."""
  try:
    return next(reader, None)
  except csv.Error as e:
    # line_num counts the lines read so far, the bad one included.
    raise UserInputError(f'{path}:{reader.line_num}: unreadable CSV ({e}); '
                         'expected comma-separated cells, "quoted" where they '
                         'hold commas or newlines.') from None


def _jsonl_records(path: str, lines: Iterable[str]
                   ) -> Iterator[tuple[int, dict[str, Any]]]:
  for line, text in enumerate(lines, start=1):
    if not text.strip():
      continue
    try:
      # Without its line ending, so that colno counts within this line.
      obj = json.loads(text.rstrip('\r\n'))
    except json.JSONDecodeError as e:
      raise UserInputError(f'{path}:{line}: not valid JSON ({e.msg}: column '
                           f'{e.colno}); expected one JSON object a line.'
                           ) from None
    if not isinstance(obj, dict):
      raise UserInputError(f'{path}:{line}: expected a JSON object, got '
                       f'{type(obj).__name__}.')
    yield line, obj


def _get(rec: dict[str, Any], field: str, path: str, line: int) -> Any:
  if field not in rec:
    raise UserInputError(f'{path}:{line}: no column {field!r}; the columns are '
                     f'{sorted(rec)}. Set config.data.text_fields / '
                     'config.data.label_field to the right names.')
  return rec[field]


def _as_text(value: Any, field: str, path: str, line: int) -> str:
  if value is None:
    return ''
  if isinstance(value, (dict, list)):
    raise UserInputError(f'{path}:{line}: field {field!r} is a '
                     f'{type(value).__name__}, not text.')
  return str(value)


def _label_key(value: Any) -> str:
  """Canonical string of a class label (JSON true -> 'true', 1 -> '1')."""
  if isinstance(value, bool):
    return 'true' if value else 'false'
  return str(value).strip()


def _as_score(value: Any, field: str, path: str, line: int) -> float:
  try:
    if isinstance(value, bool):
      raise ValueError
    score = float(value)
  except (TypeError, ValueError):
    raise UserInputError(f'{path}:{line}: regression label {field}={value!r} is '
                     'not a number.') from None
  if not math.isfinite(score):
    raise UserInputError(f'{path}:{line}: regression label {field}={value!r} is '
                     'not finite.')
  return score


def read_file(path: str, text_fields: Sequence[str], label_field: str,
              regression: bool) -> list[Example]:
  """Examples of one file; classification labels stay strings here.

  Empty texts are allowed (an empty review is data) but logged, since they
  usually mean the wrong column was named.
  """
  out, empty = [], []
  for line, rec in iter_records(path):
    texts = [_as_text(_get(rec, f, path, line), f, path, line) for f in text_fields]
    raw = _get(rec, label_field, path, line)
    label = (_as_score(raw, label_field, path, line) if regression
             else _label_key(raw))
    if not regression and not label:
      raise UserInputError(f'{path}:{line}: empty label in column {label_field!r}.')
    if not all(t.strip() for t in texts):
      empty.append(line)
    out.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label, line))
  if not out:
    raise UserInputError(f'{path}: no examples (the file has no data rows).')
  if empty:
    logging.warning('%s: %d examples have an empty text field (first at line '
                    '%d); check config.data.text_fields=%s.', path, len(empty),
                    empty[0], ','.join(text_fields))
  return out


def infer_label_names(examples: Sequence[Example], path: str) -> tuple[str, ...]:
  """Sorted label set: numerically if every label is an integer, else as text."""
  names = set(e.label for e in examples)
  if len(names) < 2:
    raise UserInputError(f'{path}: only one label ({sorted(names)}) in the '
                     'training file; classification needs at least two. Is '
                     'config.data.label_field the right column?')
  try:
    return tuple(sorted(names, key=int))
  except ValueError:
    return tuple(sorted(names))


def to_class_ids(examples: Sequence[Example], label_names: Sequence[str],
                 path: str, source: str = 'the training file') -> list[Example]:
  """Replaces string labels by class ids; an unknown label names file:line."""
  ids = {n: i for i, n in enumerate(label_names)}
  out = []
  for e in examples:
    if e.label not in ids:
      raise UserInputError(
          f'{path}:{e.idx}: label {e.label!r} is not one of the labels of '
          f'{source} {list(label_names)}; the model cannot predict it.')
    out.append(e._replace(label=ids[e.label]))
  return out


def load(train_file: str, eval_file: str, text_fields: str, label_field: str,
         regression: bool, label_names: Sequence[str] | None = None,
         max_train_examples: int = 0, max_eval_examples: int = 0,
         label_source: str = '') -> LocalData:
  """Reads and checks a local classification / regression data set.

  Args:
    train_file: Training file ('' = none, e.g. evaluation only).
    eval_file: Evaluation file ('' = none).
    text_fields: config.data.text_fields ('a' or 'a,b').
    label_field: config.data.label_field.
    regression: Float labels (else class labels).
    label_names: The classes, when already known (a fine-tuned checkpoint's);
      otherwise they are read from TRAIN_FILE.
    max_train_examples: 0 = all; N > 0 keeps the first N training examples.
    max_eval_examples: 0 = all; N > 0 keeps the first N evaluation examples.
    label_source: Where LABEL_NAMES came from, for error messages.

  Returns:
    Examples with class ids (or float scores) and the label names.
  """
  # The same rule as the TFDS readers; checked before reading anything.
  max_train = tfds_source.check_max_examples(max_train_examples)
  max_eval = tfds_source.check_max_examples(max_eval_examples)
  fields = parse_text_fields(text_fields)
  if not label_field:
    raise UserInputError('config.data.label_field is empty; name the label column.')
  train = read_file(train_file, fields, label_field, regression) if train_file else []
  evals = read_file(eval_file, fields, label_field, regression) if eval_file else []
  if not regression:
    if label_names is None:
      if not train:
        raise UserInputError('local_classification needs config.data.train_file '
                         '(or a fine-tuned checkpoint) to know its labels.')
      label_names = infer_label_names(train, train_file)
      label_source = train_file
    label_names = tuple(label_names)
    source = label_source or 'the given label set'
    train = to_class_ids(train, label_names, train_file, source)
    evals = to_class_ids(evals, label_names, eval_file, source)
  # The label set above came from the whole file; only then is it cut.
  if max_train:
    train = train[:max_train]
  if max_eval:
    evals = evals[:max_eval]
  return LocalData(train, evals, None if regression else label_names)
