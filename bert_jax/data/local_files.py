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
from collections.abc import Iterator, Sequence
from typing import Any

from absl import logging

from bert_jax.data import tfds_source
from bert_jax.data.glue import Example

FORMATS = {'.tsv': 'tsv', '.csv': 'csv', '.jsonl': 'jsonl'}


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
    raise ValueError(f'config.data.text_fields={text_fields!r}: give one text '
                     'column or two, comma separated (e.g. "sentence" or '
                     '"sentence1,sentence2").')
  return fields


def _format(path: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  if ext not in FORMATS:
    raise ValueError(f'{path}: unknown file type {ext!r}; use one of '
                     f'{tuple(FORMATS)} (TSV/CSV need a header row).')
  return FORMATS[ext]


def iter_records(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
  """(line number, {column: value}) per record of a TSV/CSV/JSONL file.

  Raises:
    FileNotFoundError: If PATH does not exist.
    ValueError: On an empty file, a row with the wrong number of cells, or a
      JSONL line that is not a JSON object; the message names file and line.
  """
  kind = _format(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path}: no such file.')
  # utf-8-sig: spreadsheet exports often start with a byte-order mark, which
  # would otherwise become part of the first column's name.
  with open(path, encoding='utf-8-sig', newline='') as f:
    if kind == 'jsonl':
      yield from _jsonl_records(path, f)
      return
    # TSV: no quoting, as GLUE's TSVs (which hold bare quote characters).
    reader = (csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE)
              if kind == 'tsv' else csv.reader(f))
    header = next(reader, None)
    if header is None:
      raise ValueError(f'{path}: the file is empty (expected a header row '
                       'naming the columns).')
    header = [h.strip() for h in header]
    line = reader.line_num + 1
    for row in reader:
      if row and any(c.strip() for c in row):
        if len(row) != len(header):
          raise ValueError(
              f'{path}:{line}: {len(row)} cells but the header has '
              f'{len(header)} ({header}).')
        yield line, dict(zip(header, row))
      line = reader.line_num + 1


def _jsonl_records(path: str, f) -> Iterator[tuple[int, dict[str, Any]]]:
  for line, text in enumerate(f, start=1):
    if not text.strip():
      continue
    try:
      obj = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}:{line}: not valid JSON ({e.msg} at column '
                       f'{e.colno}).') from e
    if not isinstance(obj, dict):
      raise ValueError(f'{path}:{line}: expected a JSON object, got '
                       f'{type(obj).__name__}.')
    yield line, obj


def _get(rec: dict[str, Any], field: str, path: str, line: int) -> Any:
  if field not in rec:
    raise ValueError(f'{path}:{line}: no column {field!r}; the columns are '
                     f'{sorted(rec)}. Set config.data.text_fields / '
                     'config.data.label_field to the right names.')
  return rec[field]


def _as_text(value: Any, field: str, path: str, line: int) -> str:
  if value is None:
    return ''
  if isinstance(value, (dict, list)):
    raise ValueError(f'{path}:{line}: field {field!r} is a '
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
    raise ValueError(f'{path}:{line}: regression label {field}={value!r} is '
                     'not a number.') from None
  if not math.isfinite(score):
    raise ValueError(f'{path}:{line}: regression label {field}={value!r} is '
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
      raise ValueError(f'{path}:{line}: empty label in column {label_field!r}.')
    if not all(t.strip() for t in texts):
      empty.append(line)
    out.append(Example(texts[0], texts[1] if len(texts) > 1 else None, label, line))
  if not out:
    raise ValueError(f'{path}: no examples (the file has no data rows).')
  if empty:
    logging.warning('%s: %d examples have an empty text field (first at line '
                    '%d); check config.data.text_fields=%s.', path, len(empty),
                    empty[0], ','.join(text_fields))
  return out


def infer_label_names(examples: Sequence[Example], path: str) -> tuple[str, ...]:
  """Sorted label set: numerically if every label is an integer, else as text."""
  names = set(e.label for e in examples)
  if len(names) < 2:
    raise ValueError(f'{path}: only one label ({sorted(names)}) in the '
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
      raise ValueError(
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
    raise ValueError('config.data.label_field is empty; name the label column.')
  train = read_file(train_file, fields, label_field, regression) if train_file else []
  evals = read_file(eval_file, fields, label_field, regression) if eval_file else []
  if not regression:
    if label_names is None:
      if not train:
        raise ValueError('local_classification needs config.data.train_file '
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
