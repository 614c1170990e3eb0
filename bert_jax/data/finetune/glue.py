"""GLUE through TFDS (``glue/NAME``, array_record, no TensorFlow) and the
GLUE leaderboard's submission files.

Examples come out as plain Python ``Example(text_a, text_b, label, idx)``
tuples: ``label`` is a class id (the TFDS ``ClassLabel`` index; -1 on test
splits) or a float score (stsb), and ``idx`` is GLUE's own example index, the
one a submission file lists.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from bert_jax import storage
from bert_jax.data import tfds_source


class _Task(NamedTuple):
  """What differs between GLUE tasks."""
  # Text fields (A, optional B) of the TFDS features.
  text_fields: tuple[str, ...]
  # Class names in TFDS ClassLabel order (class id = position); None for
  # regression. They match tensorflow_datasets/text/glue.py (a test checks
  # it), so a checkpoint's metadata is right even where TFDS info was never
  # built.
  label_names: tuple[str, ...] | None
  # Submission file stem (mnli: one per split, see `submission_file_name`).
  submission_name: str


# The one GLUE task table, in the canonical (GLUE paper) order.
_TASKS: dict[str, _Task] = {
    'cola': _Task(('sentence',), ('unacceptable', 'acceptable'), 'CoLA'),
    'sst2': _Task(('sentence',), ('negative', 'positive'), 'SST-2'),
    'mrpc': _Task(('sentence1', 'sentence2'),
                  ('not_equivalent', 'equivalent'), 'MRPC'),
    'qqp': _Task(('question1', 'question2'), ('not_duplicate', 'duplicate'),
                 'QQP'),
    'stsb': _Task(('sentence1', 'sentence2'), None, 'STS-B'),
    'mnli': _Task(('premise', 'hypothesis'),
                  ('entailment', 'neutral', 'contradiction'), 'MNLI'),
    'qnli': _Task(('question', 'sentence'), ('entailment', 'not_entailment'),
                  'QNLI'),
    'rte': _Task(('sentence1', 'sentence2'), ('entailment', 'not_entailment'),
                 'RTE'),
    'wnli': _Task(('sentence1', 'sentence2'), ('not_entailment', 'entailment'),
                  'WNLI'),
}

TASKS: tuple[str, ...] = tuple(_TASKS)
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    t: v.text_fields for t, v in _TASKS.items()}
LABEL_NAMES: dict[str, tuple[str, ...] | None] = {
    t: v.label_names for t, v in _TASKS.items()}

# The diagnostic set (TFDS ``glue/ax``, test split only, no labels) is an
# evaluation split of the MNLI task: GLUE scores it with the MNLI model.
AX_SPLIT = 'ax'

EVAL_SPLITS: dict[str, tuple[str, ...]] = {
    t: ('validation_matched', 'validation_mismatched') if t == 'mnli'
    else ('validation',) for t in TASKS}
# What a submission needs each task's model to predict.
TEST_SPLITS: dict[str, tuple[str, ...]] = {
    t: ('test_matched', 'test_mismatched', AX_SPLIT) if t == 'mnli'
    else ('test',) for t in TASKS}

# The leaderboard reads these tasks' predictions as class names; the rest as
# 0/1 (whose meaning is the TFDS id: 1 = acceptable, positive, equivalent,
# duplicate, entailment for WNLI) or, for STS-B, a score.
_NAMED_PREDICTIONS = ('mnli', 'qnli', 'rte')
STSB_RANGE = (0.0, 5.0)


class Example(NamedTuple):
  """One sentence (pair) classification or regression example."""
  text_a: str
  text_b: str | None
  label: Any  # int class id (-1: unlabeled) or float score.
  idx: int    # GLUE index (TFDS `idx`), or the line in a local file.


def _check_task(task: str) -> None:
  if task not in TASKS:
    raise ValueError(f'Unknown GLUE task {task!r}; choose one of {TASKS}.')


def is_ax(split: str) -> bool:
  """Whether SPLIT is the diagnostic set, possibly sliced ('ax[:10]')."""
  return split.split('[')[0] == AX_SPLIT


def submission_file_name(task: str, split: str) -> str:
  """What GLUE calls the predictions of TASK's SPLIT, e.g. 'MNLI-mm.tsv'."""
  _check_task(task)
  if task == 'mnli':
    if is_ax(split):
      return 'AX.tsv'
    return 'MNLI-mm.tsv' if split.endswith('mismatched') else 'MNLI-m.tsv'
  return _TASKS[task].submission_name + '.tsv'


def submission_values(task: str) -> tuple[str, ...] | None:
  """The prediction spellings GLUE accepts for TASK; None = a score (STS-B)."""
  _check_task(task)
  if task == 'stsb':
    return None
  if task in _NAMED_PREDICTIONS:
    return LABEL_NAMES[task]
  return ('0', '1')


def _text(value: Any) -> str:
  # array_record sources give Text features as bytes; mocks give str.
  if isinstance(value, np.ndarray):
    value = value.item()
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def load_examples(task: str, split: str, data_dir: str | None = None,
                  max_examples: int = 0) -> list[Example]:
  """Reads one split of GLUE TASK from TFDS.

  Args:
    task: A GLUE task name.
    split: A TFDS split ('train', 'validation_matched', 'train[:10%]', ...);
      for mnli also 'ax' (optionally sliced), the test split of ``glue/ax``.
    data_dir: TFDS data_dir; None or '' = the TFDS default.
    max_examples: 0 = all; N > 0 keeps only the first N examples.

  Returns:
    The examples, in the source's order.

  Raises:
    ValueError: On an unknown task or a negative max_examples.
    RuntimeError: If the split cannot be opened (see `tfds_source`).
  """
  _check_task(task)
  name = f'glue/{task}'
  if is_ax(split):
    if task != 'mnli':
      raise ValueError(f'Split {split!r} (TFDS glue/ax) is predicted by the '
                       f'MNLI model only; config.task={task!r}.')
    # Same fields and classes as MNLI; its only split is 'test'.
    name, split = 'glue/ax', 'test' + split[len(AX_SPLIT):]
  fields = _TASKS[task].text_fields
  regression = _TASKS[task].label_names is None
  text = tfds_source.as_text
  out = []
  for rec in tfds_source.read_records(name, split, data_dir, max_examples):
    label = float(rec['label']) if regression else int(rec['label'])
    out.append(Example(text(rec[fields[0]]),
                       text(rec[fields[1]]) if len(fields) > 1 else None,
                       label, int(rec['idx'])))
  return out


def write_glue_submission(task: str, idx: Sequence[int], predictions: Sequence[Any],
                          label_names: Sequence[str] | None, path: str) -> str:
  """Writes predictions in the GLUE leaderboard's TSV format.

  The file has a header ``index<TAB>prediction`` and one row per example,
  sorted by GLUE index (TFDS shuffles examples when it prepares a dataset).
  MNLI, QNLI and RTE predictions are class names; CoLA, SST-2, MRPC, QQP and
  WNLI are 0/1; STS-B is a score clipped to [0, 5], the range of its labels.

  Args:
    task: A GLUE task name.
    idx: GLUE index of each example.
    predictions: Class id per example, or a score for stsb.
    label_names: Class names in id order (used for mnli, qnli, rte).
    path: Where to write; parent folders are made.

  Returns:
    PATH.
  """
  _check_task(task)
  idx = np.asarray(idx).reshape(-1)
  preds = np.asarray(predictions).reshape(-1)
  if idx.shape != preds.shape:
    raise ValueError(f'write_glue_submission({task}): {idx.size} indices but '
                     f'{preds.size} predictions.')
  if task == 'stsb':
    cells = [f'{v:.3f}' for v in np.clip(preds.astype(np.float64), *STSB_RANGE)]
  elif task in _NAMED_PREDICTIONS:
    if not label_names:
      raise ValueError(f'write_glue_submission({task}) needs label_names.')
    if preds.min() < 0 or preds.max() >= len(label_names):
      raise ValueError(f'write_glue_submission({task}): class ids outside '
                       f'[0, {len(label_names)}) in the predictions.')
    cells = [label_names[int(p)] for p in preds]
  else:
    cells = [str(int(p)) for p in preds]
  order = np.argsort(idx, kind='stable')
  storage.makedirs(os.path.dirname(storage.absolute(path)))
  buf = io.StringIO()  # Written whole: a kill mid-write leaves the old file.
  w = csv.writer(buf, delimiter='\t', lineterminator='\n')
  w.writerow(['index', 'prediction'])
  for i in order:
    w.writerow([int(idx[i]), cells[i]])
  storage.write_text(path, buf.getvalue())
  return path
