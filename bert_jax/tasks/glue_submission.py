"""GLUE leaderboard submission: fine-tuned workdirs -> the files the server takes.

  # One workdir per task, named on the command line:
  python -m bert_jax.tasks.glue_submission --out=SUBMISSION \\
      --workdir=cola=runs/cola --workdir=mnli=runs/mnli ...
  # Or one parent folder holding a workdir per task (RUNS/cola, RUNS/mnli, ...):
  python -m bert_jax.tasks.glue_submission --runs=RUNS --out=SUBMISSION

Nothing is predicted here. Each fine-tuning run writes its test-split TSVs
itself when ``config.data.eval_splits`` names the test splits
(``glue.TEST_SPLITS``: ``test``; for MNLI ``test_matched``,
``test_mismatched`` and ``ax``, the diagnostic set that GLUE scores with the
MNLI model). This command finds them, checks them and puts the eleven files
(``CoLA.tsv`` ... ``WNLI.tsv``, ``AX.tsv``) into OUT, with
``OUT/submission.zip``, the archive to upload.

In a workdir, ``best/predictions/test/`` (the checkpoint that scored best on
the validation split) is preferred to ``predictions/test/`` (the last
evaluation, or an ``eval_only`` run's). Each file must have the header
``index<TAB>prediction``, the server's spellings (entailment / neutral /
contradiction for MNLI and AX, entailment / not_entailment for QNLI and RTE,
0/1 for CoLA, SST-2, MRPC, QQP and WNLI, a score in [0, 5] for STS-B),
distinct indices, and one row per test example. A missing task or file, or a
short one (a run with ``max_eval_examples``), is an error naming it;
``--allow_partial`` turns those into warnings, for checking a submission
before every task is done (the server still wants all of them).
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Mapping
import os
import shutil
import sys
import zipfile

from absl import logging

from bert_jax.data.finetune import glue

# Submission file -> (task, split whose predictions it holds), in task order.
SUBMISSION_FILES: dict[str, tuple[str, str]] = {
    glue.submission_file_name(t, s): (t, s)
    for t in glue.TASKS for s in glue.TEST_SPLITS[t]}
# Rows of each file: the sizes of the GLUE test sets (TFDS glue/*).
TEST_SIZES: dict[str, int] = {
    'CoLA.tsv': 1063, 'SST-2.tsv': 1821, 'MRPC.tsv': 1725, 'QQP.tsv': 390965,
    'STS-B.tsv': 1379, 'MNLI-m.tsv': 9796, 'MNLI-mm.tsv': 9847,
    'QNLI.tsv': 5463, 'RTE.tsv': 3000, 'WNLI.tsv': 146, 'AX.tsv': 1104}
# Where a workdir keeps test predictions, most preferred first.
PREDICTION_DIRS = (os.path.join('best', 'predictions', 'test'),
                   os.path.join('predictions', 'test'))
ZIP_NAME = 'submission.zip'
HEADER = ['index', 'prediction']


class SubmissionError(ValueError):
  """A submission that the GLUE server would reject; lists every problem."""


def files_of(task: str) -> list[str]:
  """The submission files TASK's model provides."""
  return [f for f, (t, _) in SUBMISSION_FILES.items() if t == task]


def _split_hint(task: str) -> str:
  splits = ','.join(glue.EVAL_SPLITS[task] + glue.TEST_SPLITS[task])
  return (f'fine-tune {task} with --config.data.eval_splits={splits} (or '
          f'evaluate its best/ with --config.eval_only=True and those splits)')


def parse_workdirs(specs: list[str] | None, runs: str | None
                   ) -> dict[str, str]:
  """task -> workdir from ``task=DIR`` specs and/or a parent folder RUNS.

  A spec overrides RUNS/<task>. Tasks without either are left out.
  """
  workdirs = {}
  if runs:
    if not os.path.isdir(runs):
      raise FileNotFoundError(f'--runs folder not found: {runs}')
    workdirs = {t: os.path.join(runs, t) for t in glue.TASKS
                if os.path.isdir(os.path.join(runs, t))}
  seen = set()
  for spec in specs or []:
    task, sep, path = spec.partition('=')
    if not sep or not path:
      raise ValueError(f'--workdir {spec!r}: expected TASK=DIR, e.g. '
                       'cola=runs/cola.')
    if task not in glue.TASKS:
      raise ValueError(f'--workdir {spec!r}: unknown GLUE task {task!r}; '
                       f'choose one of {glue.TASKS}.')
    if task in seen:
      raise ValueError(f'--workdir: task {task!r} given twice.')
    seen.add(task)
    workdirs[task] = path
  return workdirs


def find_predictions(task: str, workdir: str) -> tuple[str | None, list[str]]:
  """The folder of WORKDIR with TASK's files, and what it lacks.

  The first of PREDICTION_DIRS holding any of them is the one: files are
  never mixed from two checkpoints.

  Returns:
    (folder or None, problems); a problem names each missing file.
  """
  if not os.path.isdir(workdir):
    return None, [f'{task}: workdir not found: {workdir}']
  want = files_of(task)
  for sub in PREDICTION_DIRS:
    folder = os.path.join(workdir, sub)
    missing = [f for f in want if not os.path.isfile(os.path.join(folder, f))]
    if len(missing) < len(want):
      break
  else:
    folder = None
  where = folder or ' or '.join(os.path.join(workdir, d)
                                for d in PREDICTION_DIRS)
  if not missing:
    return folder, []
  return folder, [f'{task}: no {", ".join(missing)} in {where}; '
                  f'{_split_hint(task)}.']


def check_file(path: str, task: str, expected_rows: int | None
               ) -> tuple[list[str], list[str]]:
  """(errors, size problems) of one submission file.

  Errors (bad header, spelling, index) always block a submission; size
  problems (rows != EXPECTED_ROWS) only without allow_partial.
  """
  name = os.path.basename(path)
  with open(path, newline='', encoding='utf-8') as f:
    rows = list(csv.reader(f, delimiter='\t'))
  if not rows or rows[0] != HEADER:
    got = rows[0] if rows else 'an empty file'
    return [f'{path}: the header must be {HEADER}, got {got}.'], []
  errors = []
  values = glue.submission_values(task)
  indices = set()
  for line, row in enumerate(rows[1:], start=2):
    problem = None
    if len(row) != 2:
      problem = f'expected 2 cells, got {len(row)}'
    elif not row[0].isdigit():
      problem = f'index {row[0]!r} is not a non-negative integer'
    elif int(row[0]) in indices:
      problem = f'index {row[0]} appears twice'
    elif values is not None and row[1] not in values:
      problem = f'prediction {row[1]!r} is not one of {list(values)}'
    elif values is None and not _is_score(row[1]):
      problem = f'prediction {row[1]!r} is not a score in [0, 5]'
    if problem:
      errors.append(f'{path} line {line}: {problem}.')
      break  # One per file: the rest are usually the same mistake.
    indices.add(int(row[0]))
  sizes = []
  if expected_rows is not None and len(rows) - 1 != expected_rows:
    sizes.append(f'{name}: {len(rows) - 1} rows, but the GLUE test set has '
                 f'{expected_rows} ({path}; a run with max_eval_examples?).')
  return errors, sizes


def _is_score(cell: str) -> bool:
  try:
    value = float(cell)
  except ValueError:
    return False
  return glue.STSB_RANGE[0] <= value <= glue.STSB_RANGE[1]


def make_submission(workdirs: Mapping[str, str], out_dir: str, *,
                    allow_partial: bool = False,
                    test_sizes: Mapping[str, int] | None = None) -> list[str]:
  """Checks the workdirs' test TSVs and copies them, zipped too, to OUT_DIR.

  Args:
    workdirs: GLUE task -> its fine-tuning workdir.
    out_dir: Where the files and ``submission.zip`` go (made if needed).
    allow_partial: Missing tasks or files and wrong row counts are warnings,
      not errors.
    test_sizes: Rows expected per file (default: the GLUE test sets').

  Returns:
    The paths written: the TSVs, then the zip.

  Raises:
    SubmissionError: Listing every problem: tasks without a workdir, files
      missing from one, malformed files, and (unless allow_partial) files
      whose row count differs from the test set's.
  """
  sizes = TEST_SIZES if test_sizes is None else test_sizes
  errors, incomplete, chosen = [], [], {}
  for task in glue.TASKS:
    if task not in workdirs:
      incomplete.append(f'{task}: no workdir given (--workdir={task}=DIR, or '
                        f'a {task}/ folder under --runs).')
      continue
    folder, problems = find_predictions(task, workdirs[task])
    incomplete += problems
    for name in files_of(task):
      path = os.path.join(folder or '', name)
      if folder is None or not os.path.isfile(path):
        continue
      bad, short = check_file(path, task, sizes.get(name))
      errors += bad
      incomplete += short
      chosen[name] = path
  if incomplete and allow_partial:
    for line in incomplete:
      logging.warning('GLUE submission incomplete: %s', line)
  if errors or (incomplete and not allow_partial):
    problems = errors + ([] if allow_partial else incomplete)
    raise SubmissionError('GLUE submission not written:\n  ' +
                          '\n  '.join(problems))
  os.makedirs(out_dir, exist_ok=True)
  written = []
  for name in SUBMISSION_FILES:
    if name in chosen:
      target = os.path.join(out_dir, name)
      shutil.copyfile(chosen[name], target)
      written.append(target)
  archive = os.path.join(out_dir, ZIP_NAME)
  with zipfile.ZipFile(archive, 'w', zipfile.ZIP_DEFLATED) as z:
    for path in written:  # At the archive's top level, as the server wants.
      z.write(path, os.path.basename(path))
  return written + [archive]


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.tasks.glue_submission',
      description='Collect fine-tuned GLUE workdirs into a leaderboard '
      'submission.', epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', action='append', metavar='TASK=DIR',
                      help='A task and its fine-tuning workdir; repeat per '
                      f'task ({", ".join(glue.TASKS)}).')
  parser.add_argument('--runs', metavar='DIR',
                      help='A folder holding one workdir per task, named by '
                      'the task (DIR/cola, DIR/mnli, ...).')
  parser.add_argument('--out', required=True, metavar='DIR',
                      help='Where to write the TSVs and submission.zip.')
  parser.add_argument('--allow_partial', action='store_true',
                      help='Write what there is: missing tasks and short '
                      'files become warnings.')
  return parser


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  if not args.workdir and not args.runs:
    build_parser().error('give --workdir TASK=DIR (repeated) and/or --runs DIR')
  workdirs = parse_workdirs(args.workdir, args.runs)
  try:
    paths = make_submission(workdirs, args.out,
                            allow_partial=args.allow_partial)
  except SubmissionError as e:
    print(e, file=sys.stderr)
    return 1
  print(f'Wrote {len(paths) - 1} files and {paths[-1]}.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
