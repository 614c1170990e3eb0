"""Deterministic k-fold splits of a local training file, for cross-validation.

``split_file('train.tsv', k=5, out_dir)`` writes ``fold{i}_train.tsv`` (every
record outside fold i) and ``fold{i}_dev.tsv`` (fold i) for i in 0..k-1, in
the input's own format, so that the fine-tuning task reads them as it reads
the original:

* TSV / CSV with a header row (the header is repeated in every file; CSV is
  read and written with the csv module, so quoted newlines survive);
* JSONL, one record a line;
* anything else as CoNLL: blocks separated by blank lines (one sentence each).

Records are shuffled with SEED, then dealt round-robin into the folds label
by label when LABEL_FIELD is given (stratified: every fold keeps the class
mix, and no class is missing from a training fold unless it has fewer
than 2 records), so fold sizes differ by at most one per label.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any

import numpy as np

_TABLES = {'.tsv': '\t', '.csv': ','}


def _read(path: str) -> tuple[str, list[Any], list[Any], str]:
  """(kind, header, records, extension); records are raw rows/lines/blocks."""
  ext = os.path.splitext(path)[1].lower()
  if not os.path.exists(path):
    raise FileNotFoundError(f'k-fold: data.train_file {path} does not exist.')
  with open(path, newline='', encoding='utf-8') as f:
    if ext in _TABLES:
      reader = (csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE)
                if ext == '.tsv' else csv.reader(f))
      header = next(reader, None)
      if header is None:
        raise ValueError(f'k-fold: {path} is empty (expected a header row).')
      return 'table', header, [row for row in reader if row], ext
    text = f.read()
  if ext == '.jsonl':
    return 'jsonl', [], [l for l in text.splitlines() if l.strip()], ext
  blocks = [b.strip('\n') for b in text.replace('\r\n', '\n').split('\n\n')]
  return 'blocks', [], [b for b in blocks if b.strip()], ext


def _label(kind: str, header: list[str], record: Any, field: str) -> str:
  if not field:
    return ''
  if kind == 'table':
    return record[header.index(field)] if field in header else ''
  if kind == 'jsonl':
    try:
      return repr(json.loads(record).get(field))
    except (json.JSONDecodeError, AttributeError):
      return ''
  return ''  # CoNLL sentences have no single label.


def assign_folds(labels: list[str], k: int, seed: int = 0) -> list[int]:
  """The fold of each record: shuffled, then dealt round-robin per label."""
  rng = np.random.RandomState(seed)
  order = rng.permutation(len(labels))
  fold = [0] * len(labels)
  next_fold = 0
  by_label: dict[str, list[int]] = {}
  for i in order:
    by_label.setdefault(labels[i], []).append(int(i))
  for label in sorted(by_label):
    for i in by_label[label]:
      # One counter over all labels: the folds also stay balanced in size.
      fold[i] = next_fold
      next_fold = (next_fold + 1) % k
  return fold


def _write(path: str, kind: str, ext: str, header: list[str], records: list[Any]):
  tmp = path + '.tmp'
  with open(tmp, 'w', newline='', encoding='utf-8') as f:
    if kind == 'table':
      w = (csv.writer(f, delimiter='\t', quoting=csv.QUOTE_NONE, escapechar=None,
                      lineterminator='\n') if ext == '.tsv'
           else csv.writer(f, lineterminator='\n'))
      w.writerow(header)
      w.writerows(records)
    elif kind == 'jsonl':
      f.write(''.join(r + '\n' for r in records))
    else:
      f.write('\n\n'.join(records) + '\n')
  os.replace(tmp, path)


def split_file(path: str, k: int, out_dir: str, seed: int = 0,
               label_field: str = '') -> list[tuple[str, str]]:
  """Writes the k folds of PATH into OUT_DIR; returns [(train, dev)] paths.

  Raises:
    ValueError: k < 2, or fewer records than folds.
  """
  if k < 2:
    raise ValueError(f'--kfold {k}: k-fold cross-validation needs k >= 2.')
  kind, header, records, ext = _read(path)
  if len(records) < k:
    raise ValueError(f'k-fold: {path} has {len(records)} records, fewer than '
                     f'k={k} folds.')
  if label_field and kind == 'table' and label_field not in header:
    raise ValueError(f'k-fold: {path} has no column {label_field!r} to stratify '
                     f'by; its header is {header}.')
  folds = assign_folds([_label(kind, header, r, label_field) for r in records],
                       k, seed)
  os.makedirs(out_dir, exist_ok=True)
  out = []
  for i in range(k):
    train = os.path.join(out_dir, f'fold{i}_train{ext}')
    dev = os.path.join(out_dir, f'fold{i}_dev{ext}')
    # Records keep their file order inside each part (the loader shuffles).
    _write(train, kind, ext, header, [r for r, f in zip(records, folds) if f != i])
    _write(dev, kind, ext, header, [r for r, f in zip(records, folds) if f == i])
    out.append((train, dev))
  return out
