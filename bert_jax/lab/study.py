r"""Pretrain -> fine-tune studies: variants x seeds pretrained, each checkpoint
fine-tuned on a downstream suite, next to a random-init floor.

  python -m bert_jax.lab.study --study experiments/studies/variants.py \
      --root runs/study --seeds 3 --workers 2
  python -m bert_jax.lab.study --study experiments/studies/variants.py \
      --root runs/study --dry_run            # the plan, nothing written

A study file (experiments/studies/*.py) names:

* ``VARIANTS``: a sweep file (experiments/sweeps/*.py) whose entries are the
  pretraining variants (``ONLY = ('baseline', 'rope')`` keeps some), or
  ``BASE`` and ``sweep()`` itself, as a sweep file does;
* ``PRETRAIN``: overrides every pretraining trial gets (the study's recipe);
  a variant's own value wins;
* ``SUITE``: the downstream tasks, each ``{'name', 'base': a fine-tuning
  config spec, 'overrides': {...}}`` plus either ``'builtin_topics': {...}``
  (``bert_jax.data.finetune.builtin_topics.make_splits`` arguments: the files are
  written to ``ROOT/data/NAME/``) or local files in its overrides
  (``data.train_file``, ``data.eval_file``), or a TFDS task (``task=sst2``);
* ``SEEDS`` (default 1; ``--seeds`` overrides it) and ``REFERENCE`` (the
  variant whose architecture the random-init row has; default the first);
* ``EVAL_LENGTHS`` (optional), e.g. ``(64, 128, 256)``: every pretrained
  checkpoint is evaluated (``eval_only``, no training) on its held-out
  documents at each of these ``data.max_seq_length`` values, in
  ``ROOT/eval_length/L<N>/`` (same trial names); ``EVAL_MASK_RATE`` (default
  0.15) is every evaluation's ``data.mask_rate``, whatever the variant trained
  with, and sizes ``data.max_predictions_per_seq`` at each length. A length past
  a variant's position table (learned or sinusoidal rows) is not run: the
  report says n/a.

``SUITE = []`` makes a pretraining-only study (held-out MLM metrics, and
``EVAL_LENGTHS`` if given): no fine-tuning, no random-init floor.

Layout: ``ROOT/pretrain/`` is a sweep root (``VARIANT.seedS``);
``ROOT/finetune/TASK/`` one per task, with a trial per pretrained checkpoint
(same name, same seed, ``init_from`` it) and ``random_init.seedS``: the
reference architecture and its seed-S tokenizer, no pretrained weights, the
same fine-tuning config. ``ROOT/study.md`` is the report
(bert_jax/lab/study_report.py). Finished trials are skipped, so rerunning the
command resumes the study (with ``--scheduler slurm``: rerun it once the
pretraining jobs are done to submit the fine-tuning ones).

Held-out text: the dev/test sentences of every local task are written to
``ROOT/data/heldout_sentences.txt`` and pretraining runs with
``data.exclude_sentences`` set to it, so no downstream evaluation sentence is
in the pretraining corpus. A TFDS task's text cannot be checked this way; the
report says so.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import json
import os
import re
import sys
from typing import Any

from bert_jax.data.finetune import builtin_topics
from bert_jax.data.pretrain import corpora
from bert_jax.models.config import RUNTIME_FIELDS, TABLE_POSITIONS
from bert_jax.lab import study_report
from bert_jax.lab import sweep
from bert_jax.lab import trials as trials_lib

RANDOM_INIT = study_report.RANDOM_INIT
HELDOUT = os.path.join('data', 'heldout_sentences.txt')
_TASK_KEYS = ('name', 'base', 'overrides', 'builtin_topics')


@dataclasses.dataclass
class Task:
  name: str
  base: str
  overrides: dict[str, Any]
  topics: dict[str, Any] | None      # builtin_topics.make_splits arguments.


@dataclasses.dataclass
class Study:
  path: str
  variants: sweep.Sweep               # Pretraining entries (a sweep).
  pretrain: dict[str, Any]            # PRETRAIN overrides.
  suite: list[Task]
  seeds: Any
  reference: str
  eval_lengths: tuple[int, ...] = ()
  eval_mask_rate: float = 0.15


def _module(path: str):
  spec = importlib.util.spec_from_file_location(
      '_study_' + re.sub(r'\W', '_', os.path.basename(path)[:-3]), path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load(spec: str) -> Study:
  """The study of a study file; every mistake names the file and the field."""
  path = spec if os.path.isabs(spec) else next(
      (p for p in (os.path.abspath(spec), os.path.join(trials_lib.REPO, spec))
       if os.path.exists(p)), os.path.abspath(spec))
  if not os.path.exists(path):
    raise sweep.SweepError(f'Study file {path} does not exist.')
  m = _module(path)
  if hasattr(m, 'VARIANTS'):
    variants = sweep.load(m.VARIANTS)
  elif hasattr(m, 'BASE') and hasattr(m, 'sweep'):
    variants = sweep.load(path)
  else:
    raise sweep.SweepError(f'{path}: a study needs VARIANTS = a sweep file, or '
                           'BASE and sweep() as a sweep file has.')
  only = list(getattr(m, 'ONLY', ()) or ())
  if only:
    names = [n for n, _ in sweep.named_entries(variants.entries, variants.path)]
    unknown = sorted(set(only) - set(names))
    if unknown:
      raise sweep.SweepError(f'{path}: ONLY names {unknown}, not entries of '
                             f'{variants.path} ({", ".join(names)}).')
    variants.entries = [e for e, n in zip(variants.entries, names) if n in only]
  suite_raw = getattr(m, 'SUITE', None)
  if not isinstance(suite_raw, (list, tuple)):
    raise sweep.SweepError(f'{path}: SUITE must be a list of '
                           "{'name': ..., 'base': 'configs/finetune.py:task=...'} dicts "
                           '([] for a pretraining-only study).')
  suite = []
  for i, t in enumerate(suite_raw):
    if not isinstance(t, dict) or not t.get('name') or not t.get('base'):
      raise sweep.SweepError(f'{path}: SUITE[{i}] needs a name and a base '
                             f'(a fine-tuning config spec), got {t!r}.')
    extra = sorted(set(t) - set(_TASK_KEYS))
    if extra:
      raise sweep.SweepError(f'{path}: SUITE[{i}] ({t["name"]}) has unknown keys '
                             f'{extra}; valid: {", ".join(_TASK_KEYS)}.')
    if not re.fullmatch(r'[A-Za-z0-9][A-Za-z0-9._-]*', t['name']):
      raise sweep.SweepError(f'{path}: SUITE[{i}] name {t["name"]!r} is not a '
                             'safe directory name.')
    suite.append(Task(t['name'], t['base'], dict(t.get('overrides', {})),
                      t.get('builtin_topics')))
  if len({t.name for t in suite}) != len(suite):
    raise sweep.SweepError(f'{path}: two SUITE tasks share a name.')
  first = sweep.named_entries(variants.entries, variants.path)[0][0]
  lengths = tuple(getattr(m, 'EVAL_LENGTHS', ()) or ())
  if any(not isinstance(n, int) or n < 8 for n in lengths) or len(set(lengths)) != len(lengths):
    raise sweep.SweepError(f'{path}: EVAL_LENGTHS must be distinct integers >= 8, '
                           f'got {lengths!r}.')
  rate = float(getattr(m, 'EVAL_MASK_RATE', 0.15))
  if not 0 < rate < 1:
    raise sweep.SweepError(f'{path}: EVAL_MASK_RATE must be in (0, 1), got {rate}.')
  return Study(path, variants, dict(getattr(m, 'PRETRAIN', {})), suite,
               getattr(m, 'SEEDS', None), getattr(m, 'REFERENCE', first),
               lengths, rate)



# --- Data and held-out text ---------------------------------------------------

def prepare_data(study: Study, root: str, write: bool = True) -> dict[str, dict[str, Any]]:
  """Each task's final overrides (builtin topic files written under ROOT/data)."""
  out = {}
  for task in study.suite:
    overrides = dict(task.overrides)
    if task.topics is not None:
      d = os.path.join(root, 'data', task.name)
      paths = {s: os.path.join(d, f'{s}.tsv') for s in ('train', 'dev', 'test')}
      if write:
        try:
          data = builtin_topics.make_splits(**task.topics)
        except (TypeError, ValueError) as e:
          raise sweep.SweepError(f'{study.path}: SUITE {task.name!r} builtin_topics='
                                 f'{task.topics}: {e}') from None
        paths = builtin_topics.write_splits(d, data)
      overrides.setdefault('data.train_file', paths['train'])
      overrides.setdefault('data.eval_file', paths['dev'])
      overrides.setdefault('data.text_fields', 'sentence')
      overrides.setdefault('data.label_field', 'label')
    out[task.name] = overrides
  return out


def _text_of(path: str, fields: list[str]) -> list[str]:
  """The TEXT FIELDS of every record of a local TSV/CSV/JSONL file."""
  ext = os.path.splitext(path)[1].lower()
  with open(path, newline='', encoding='utf-8') as f:
    if ext == '.jsonl':
      rows = [json.loads(line) for line in f if line.strip()]
    else:
      rows = list(csv.DictReader(f, delimiter='\t' if ext == '.tsv' else ',',
                                 quoting=csv.QUOTE_NONE if ext == '.tsv'
                                 else csv.QUOTE_MINIMAL))
  return [str(r[k]) for r in rows for k in fields if r.get(k)]


def heldout_sentences(study: Study, task_overrides: dict[str, dict[str, Any]]
                      ) -> tuple[list[str], dict[str, str]]:
  """(every dev/test sentence of the local tasks, task -> what was excluded)."""
  sentences: dict[str, None] = {}
  notes = {}
  for task in study.suite:
    o = task_overrides[task.name]
    files = [o[k] for k in ('data.eval_file',) if o.get(k)]
    if task.topics is not None and task.topics.get('test'):
      files.append(os.path.join(os.path.dirname(o['data.eval_file']), 'test.tsv'))
    if not files:
      notes[task.name] = ('not checked: its evaluation text comes from TFDS, '
                          'not a local file')
      continue
    fields = [f.strip() for f in str(o.get('data.text_fields', 'sentence')).split(',')]
    n0, own = len(sentences), set()
    for path in files:
      if not os.path.exists(path):
        raise sweep.SweepError(f'SUITE {task.name!r}: {path} does not exist.')
      for text in _text_of(path, fields):
        # Whole texts and their sentences: the corpus is matched sentence by sentence.
        for s in [text, *corpora.split_sentences(text)]:
          own.add(' '.join(s.split()))
          sentences[' '.join(s.split())] = None
    shared = len(own) - (len(sentences) - n0)
    notes[task.name] = (f'excluded from pretraining: {len(own)} sentences of '
                        f'{", ".join(map(os.path.basename, files))}'
                        + (f' ({shared} of them held out for an earlier task too)'
                           if shared else ''))
  return list(sentences), notes


# --- Planning -----------------------------------------------------------------

def pretrain_trials(study: Study, args: argparse.Namespace, root: str
                    ) -> tuple[list[trials_lib.Trial], dict[str, Any]]:
  """Variants x seeds, each with PRETRAIN and the held-out exclusion."""
  runs = sweep.named_entries(study.variants.entries, study.variants.path)
  extra = {**study.pretrain, 'data.exclude_sentences': os.path.join(root, HELDOUT)}
  merged = [(n, {**extra, **o}) for n, o in runs]
  seeds = trials_lib.parse_seeds(args.seeds if args.seeds is not None else
                                 study.seeds if study.seeds is not None else 1)
  bases = {n: e['base'] for (n, _), e in zip(runs, study.variants.entries) if 'base' in e}
  trials = trials_lib.expand(study.variants.base, merged, sweep.parse_set(args.common),
                             seeds, None, bases)
  return trials, dict(runs)


def architecture(pretrain_dir: str, finetune_base: str) -> dict[str, Any]:
  """model.* overrides giving a fresh model PRETRAIN_DIR's architecture."""
  with open(os.path.join(pretrain_dir, 'model_config.json')) as f:
    saved = json.load(f)
  fields = sweep.base_config(finetune_base).model
  return {f'model.{k}': v for k, v in sorted(saved.items())
          if k in fields and k not in RUNTIME_FIELDS}


def finetune_trials(study: Study, task: Task, overrides: dict[str, Any],
                    pretrained: list[trials_lib.Trial], pretrain_root: str,
                    common: dict[str, str]) -> list[trials_lib.Trial]:
  """One trial per finished pretraining trial, plus the random-init floor.

  A trial of an unfinished pretraining trial is left out (it is reported
  missing); the random-init trial of seed S needs the reference's seed-S
  pretraining for its tokenizer and architecture.
  """
  out = []
  for p in pretrained:
    out.append(trials_lib.Trial(p.name, p.entry, p.seed, task.base, {
        **overrides, 'init_from': os.path.join(pretrain_root, p.name)}, common))
  for p in pretrained:
    if p.entry != study.reference:
      continue
    pdir = os.path.join(pretrain_root, p.name)
    name = RANDOM_INIT + p.name[len(p.entry):]   # random_init.seedS
    out.append(trials_lib.Trial(name, RANDOM_INIT, p.seed, task.base, {
        **overrides, **architecture(pdir, task.base),
        'data.tokenizer': os.path.join(pdir, 'tokenizer')}, common))
  return out


EVAL_LENGTH = 'eval_length'


def length_trials(study: Study, pretrained: list[trials_lib.Trial], pretrain_root: str
                  ) -> tuple[dict[int, list[trials_lib.Trial]], dict[int, list[str]]]:
  """Per length: one eval_only trial per finished pretraining trial, with its
  own overrides (same corpus, seed, held-out documents) but the length; and
  the trials whose position table cannot encode the length (n/a)."""
  runs, na = {}, {}
  for n in study.eval_lengths:
    runs[n], na[n] = [], []
    for p in pretrained:
      pdir = os.path.join(pretrain_root, p.name)
      with open(os.path.join(pdir, 'model_config.json')) as f:
        saved = json.load(f)
      if (saved.get('position_embedding') in TABLE_POSITIONS
          and n > int(saved.get('max_position_embeddings', 0))):
        na[n].append(p.name)
        continue
      runs[n].append(trials_lib.Trial(p.name, p.entry, p.seed, p.base, {
          **p.overrides, 'init_from': pdir, 'eval_only': True,
          'data.max_seq_length': n, 'data.mask_rate': study.eval_mask_rate,
          'data.max_predictions_per_seq': max(1, int(round(study.eval_mask_rate * n)))},
          p.common))
  return runs, na


# --- Command line -------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.lab.study', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--study', required=True, help='Study file (experiments/studies/*.py).')
  sweep.add_run_flags(parser)   # --set: every pretraining trial.
  parser.add_argument('--finetune_set', action='extend', nargs='+', default=[],
                      metavar='FIELD=VALUE', help='Override added to every fine-tuning trial.')
  args = parser.parse_args(argv)
  try:
    if not args.root:
      raise sweep.SweepError('--root DIR is required.')
    if args.workers < 1:
      raise sweep.SweepError(f'--workers={args.workers} must be >= 1.')
    root = os.path.abspath(args.root)
    study = load(args.study)
    overrides = prepare_data(study, root, write=not args.dry_run)
    ptrials, entries = pretrain_trials(study, args, root)
    if study.reference not in entries:
      raise sweep.SweepError(f'{study.path}: REFERENCE {study.reference!r} is not '
                             f'a variant ({", ".join(entries)}).')
    sweep.check_trials(ptrials)
    ft_common = sweep.parse_set(args.finetune_set)
    for task in study.suite:  # Typos in the suite fail before any pretraining.
      probe = trials_lib.Trial('check', 'check', None, task.base, {
          **overrides[task.name], 'init_from': root}, ft_common)
      sweep.check_trials([probe])
  except (sweep.SweepError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  pretrain_root = os.path.join(root, 'pretrain')
  if not args.dry_run:
    sentences, notes = heldout_sentences(study, overrides)
    os.makedirs(os.path.join(root, 'data'), exist_ok=True)
    trials_lib.write_json(os.path.join(root, 'study.json'), {
        'study': study.path, 'suite': [t.name for t in study.suite],
        'reference': study.reference, 'heldout': notes,
        'eval_lengths': list(study.eval_lengths)})
    path = os.path.join(root, HELDOUT)
    text = ''.join(s + '\n' for s in sentences)
    if not os.path.exists(path) or open(path, encoding='utf-8').read() != text:
      with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
  print(f'{len(ptrials)} pretraining trial(s) in {pretrain_root}')
  rc = sweep.execute(study.variants, ptrials, args, 'study-pretrain', pretrain_root,
                     entries)
  done = [t for t in ptrials if trials_lib.is_finished(pretrain_root, t)]
  if args.dry_run:
    if study.eval_lengths:
      print(f'# then each pretrained checkpoint evaluated at lengths '
            f'{", ".join(map(str, study.eval_lengths))} in ROOT/{EVAL_LENGTH}/L<N>')
    print(f'# then, per task of {", ".join(t.name for t in study.suite)}: one '
          f'fine-tuning trial per pretrained checkpoint (init_from) and '
          f'{RANDOM_INIT}.seedS per seed of {study.reference}, in ROOT/finetune/TASK')
    return rc
  if study.eval_lengths:
    runs, na = length_trials(study, done, pretrain_root)
    for n in study.eval_lengths:
      lroot = os.path.join(root, EVAL_LENGTH, f'L{n}')
      os.makedirs(lroot, exist_ok=True)
      trials_lib.write_json(os.path.join(lroot, 'not_applicable.json'), na[n])
      print(f'length {n}: {len(runs[n])} evaluation(s) in {lroot}'
            + (f'; n/a (position table too short): {", ".join(na[n])}' if na[n] else ''))
      rc = sweep.execute(study.variants, runs[n], args, f'study-L{n}', lroot,
                         entries) or rc
  for task in study.suite:
    task_root = os.path.join(root, 'finetune', task.name)
    ft = finetune_trials(study, task, overrides[task.name], done, pretrain_root,
                         ft_common)
    print(f'{task.name}: {len(ft)} fine-tuning trial(s) in {task_root}')
    task_entries = {e: (o if e != RANDOM_INIT else {'init': 'random'})
                    for e, o in entries.items()}
    task_entries.setdefault(RANDOM_INIT, {'init': 'random'})
    rc = sweep.execute(sweep.Sweep(task.base, [], study.path), ft, args,
                       f'study-{task.name}', task_root, task_entries) or rc
  if len(done) < len(ptrials):
    print(f'{len(ptrials) - len(done)} pretraining trial(s) not finished; rerun '
          'this command to continue (finished trials are skipped).', file=sys.stderr)
    rc = rc or (0 if args.scheduler == 'slurm' else 1)
  study_report.write(root)
  return rc


if __name__ == '__main__':
  sys.exit(main())
