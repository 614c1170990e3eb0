r"""Hyper-parameter search for fine-tuning: search, select on dev, final evaluation.

  # The BERT paper's grid (18 settings), selected on the dev file, then the
  # selected setting trained again and evaluated on the test file:
  python -m bert_jax.lab.hpsearch --root runs/hp \
      --base configs/finetune.py:task=local_classification \
      --space bert_paper --set init_from=runs/pretrained \
      data.train_file=train.tsv data.eval_file=dev.tsv --test_file test.tsv

  # No dev split: 5-fold cross-validation on the train file (mean +- std over
  # folds per setting), then train on all of it and evaluate on data.eval_file:
  python -m bert_jax.lab.hpsearch --root runs/hp_cv --kfold 5 \
      --base configs/finetune.py:task=local_classification \
      --random 8 --dist optim.learning_rate=loguniform:1e-5:1e-4 \
      --dist train.num_epochs=choice:2,3,4 \
      --set init_from=runs/pretrained data.train_file=train.tsv data.eval_file=test.tsv

Layout: ``ROOT/search/`` holds a sweep (one trial per setting x seed, or
setting x fold x seed: ``NAME.fold2``; the report groups them per setting),
``ROOT/folds/`` the fold files (bert_jax/lab/kfold.py), ``ROOT/final/`` the
final trials, ``ROOT/hpsearch.json`` and ``ROOT/hpsearch.md`` the outcome.
Selection: the best mean over seeds (and folds) of ``--metric`` (default the
task's main metric at the last step, as in the report) on the dev split, i.e.
each trial's ``eval_results.json``. Rerunning the command skips finished
trials, so with ``--scheduler slurm`` run it again once the search jobs are
done: it then selects and submits the final trials, and a third time reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any

from bert_jax.lab import aggregate
from bert_jax.lab import kfold
from bert_jax.lab import report
from bert_jax.lab import search_space
from bert_jax.lab import sweep
from bert_jax.lab import trials as trials_lib

# Tasks whose train file k-fold can split, and the field to stratify by.
_LOCAL = {'local_classification': 'label_field', 'local_regression': '',
          'local_ner': ''}


def _field(config: Any, common: dict[str, str], key: str) -> str:
  """KEY's value: from --set when given there, else the base config's."""
  if key in common:
    return common[key]
  node = config
  for part in key.split('.'):
    node = node[part]
  return node


def search_trials(args: argparse.Namespace, settings: list[dict[str, Any]],
                  root: str) -> tuple[list[trials_lib.Trial], dict[str, Any]]:
  """The search trials (settings x [folds] x seeds) and each setting's overrides."""
  common = sweep.parse_set(args.common)
  seeds = trials_lib.parse_seeds(args.seeds or 1)
  runs = sweep.named_entries(settings, f'--base {args.base}')
  entries = dict(runs)
  if not args.kfold:
    return trials_lib.expand(args.base, runs, common, seeds), entries
  config = sweep.base_config(args.base)
  if config.task not in _LOCAL:
    raise sweep.SweepError(f'--kfold needs a local_* task with a train file; '
                           f'{args.base} has task {config.task!r}.')
  train_file = _field(config, common, 'data.train_file')
  if not train_file:
    raise sweep.SweepError('--kfold: data.train_file is not set (--set '
                           'data.train_file=PATH).')
  label_key = _LOCAL[config.task]
  stratify = _field(config, common, f'data.{label_key}') if label_key else ''
  folds = kfold.split_file(train_file, args.kfold, os.path.join(root, 'folds'),
                           seed=args.fold_seed, label_field=stratify)
  out = []
  for name, overrides in runs:
    for i, (train, dev) in enumerate(folds):
      fold = {**overrides, 'data.train_file': train, 'data.eval_file': dev}
      for t in trials_lib.expand(args.base, [(f'{name}.fold{i}', fold)], common,
                                 seeds):
        # Grouped by setting: the report's mean +- std is then over folds
        # (and seeds).
        out.append(trials_lib.Trial(t.name, name, t.seed, t.base, t.overrides,
                                    t.common))
  return out, entries


def _summaries(root: str, metric: str | None, entries: dict[str, Any]):
  rows = report.collect(root)
  metric = report.choose_metric(rows, metric)
  return rows, metric, aggregate.group(rows, entries)


def select(groups: list[dict[str, Any]], metric: str, lower: bool) -> dict[str, Any]:
  """The group with the best mean METRIC over its finished trials."""
  scored = [g for g in groups if g['summaries'].get(metric)]
  if not scored:
    raise sweep.SweepError(f'no finished search trial has {metric}.')
  return min(scored, key=lambda g: (g['summaries'][metric].mean * (1 if lower else -1),
                                    g['name']))


def _summary_line(s) -> str:
  if s is None:
    return '–'
  if s.std is None:
    return f'{s.mean:.4f} (n=1)'
  return f'{s.mean:.4f} ± {s.std:.4f} (n={s.n}, 95% CI [{s.lo:.4f}, {s.hi:.4f}])'


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.lab.hpsearch', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--base', required=True,
                      help='Fine-tuning config spec, e.g. configs/finetune.py:task=sst2.')
  sweep.add_run_flags(parser)
  sweep.add_space_flags(parser)
  parser.add_argument('--kfold', type=int, default=0,
                      help='K-fold cross-validation on data.train_file (no dev split).')
  parser.add_argument('--fold_seed', type=int, default=0, help='Seed of the fold split.')
  parser.add_argument('--metric', default=None,
                      help='Selection metric (default: the main metric at the last step).')
  parser.add_argument('--lower_is_better', default=None,
                      type=lambda s: s.lower() in ('1', 'true', 'yes'))
  parser.add_argument('--test_file', default='',
                      help='Final evaluation file (default with --kfold: data.eval_file).')
  parser.add_argument('--no_final', action='store_true',
                      help='Stop after the selection.')
  args = parser.parse_args(argv)
  try:
    if not args.root:
      raise sweep.SweepError('--root DIR is required.')
    root = os.path.abspath(args.root)
    settings = search_space.settings_from_args(args.space, args.grid, args.random,
                                               args.dist, args.search_seed)
    if not settings:
      raise sweep.SweepError('no search space: give --space NAME, --grid FIELD=V1,V2 '
                             'or --random N --dist FIELD=KIND:ARGS.')
    if args.kfold == 1 or args.kfold < 0:
      raise sweep.SweepError(f'--kfold {args.kfold}: use k >= 2 (or 0 for a dev split).')
    trials, entries = search_trials(args, settings, root)
    sweep.check_trials(trials)
  except (sweep.SweepError, search_space.SpaceError, ValueError,
          FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  search_root = os.path.join(root, 'search')
  s = sweep.Sweep(args.base, settings, f'--base {args.base}')
  print(f'{len(settings)} setting(s), {len(trials)} search trial(s) in {search_root}')
  rc = sweep.execute(s, trials, args, 'hpsearch', search_root, entries)
  if args.dry_run:
    return rc
  unfinished = [t.name for t in trials if not trials_lib.is_finished(search_root, t)]
  if unfinished:
    print(f'{len(unfinished)} search trial(s) not finished ({", ".join(unfinished[:5])}'
          f'{", ..." if len(unfinished) > 5 else ""}); rerun this command to '
          'continue (finished trials are skipped).', file=sys.stderr)
    # Submitted to SLURM is no failure: the next invocation goes on from there.
    return rc or (0 if args.scheduler == 'slurm' else 1)

  try:
    _, metric, groups = _summaries(search_root, args.metric, entries)
  except KeyError as e:
    print(f'error: {e.args[0]}', file=sys.stderr)
    return 2
  lower = args.lower_is_better
  if lower is None:
    lower = report.default_lower(metric)
  best = select(groups, metric, lower)
  what = 'folds' if args.kfold else 'seeds'
  tied = sorted(g['name'] for g in groups if g is not best and g['summaries'].get(metric)
                and g['summaries'][metric].mean == best['summaries'][metric].mean)
  # A tie is picked by name: say so, it is no evidence for the setting.
  tie = (f' (tied with {", ".join(tied)}: picked the first by name)' if tied else '')
  print(f'\nselected {best["name"]}: {metric} {_summary_line(best["summaries"][metric])} '
        f'over {what} on the dev split{tie}')
  report.main([search_root, '--metric', metric, '--baseline', best['name'],
               '--out', os.path.join(root, 'search_report.md')] +
              (['--lower_is_better', str(lower)] if args.lower_is_better is not None
               else []))
  outcome: dict[str, Any] = {
      'metric': metric, 'lower_is_better': lower, 'selection_on': (
          f'{args.kfold}-fold cross-validation of data.train_file' if args.kfold
          else 'the dev split (data.eval_file / the task\'s validation split)'),
      'selected': best['name'], 'tied_with': tied, 'setting': entries[best['name']],
      'search': {g['name']: dataclasses.asdict(g['summaries'][metric])
                 for g in groups if g['summaries'].get(metric)}}
  test_file = args.test_file
  if args.kfold and not test_file:
    config = sweep.base_config(args.base)
    test_file = _field(config, sweep.parse_set(args.common), 'data.eval_file')
  final_rc = 0
  if args.no_final or not test_file:
    note = ('--no_final' if args.no_final else
            'no --test_file: the selected setting\'s dev score above is the '
            'figure, and it is biased upward by the selection itself')
    print(f'\nno final evaluation ({note}).')
  else:
    final_root = os.path.join(root, 'final')
    final = {**entries[best['name']], 'data.eval_file': test_file}
    final_trials = trials_lib.expand(args.base, [('final', final)],
                                     sweep.parse_set(args.common),
                                     trials_lib.parse_seeds(args.seeds or 1))
    final_rc = sweep.execute(sweep.Sweep(args.base, [final], 'final'), final_trials,
                             args, 'hpsearch-final', final_root)
    if all(trials_lib.is_finished(final_root, t) for t in final_trials):
      _, _, fgroups = _summaries(final_root, metric, {'final': final})
      fs = fgroups[0]['summaries'].get(metric)
      outcome['final'] = {'test_file': test_file, **(dataclasses.asdict(fs) if fs else {})}
      print(f'\nfinal: {best["name"]} trained on all of data.train_file, {metric} '
            f'on {test_file}: {_summary_line(fs)}')
    else:
      print('final trial(s) not finished; rerun this command.', file=sys.stderr)
      final_rc = final_rc or (0 if args.scheduler == 'slurm' else 1)
  trials_lib.write_json(os.path.join(root, 'hpsearch.json'), outcome)
  lines = [f'# Hyper-parameter search: {os.path.basename(root)}', '',
           f'Selected on {outcome["selection_on"]} by mean {metric} '
           f'({"lower" if lower else "higher"} is better): **{best["name"]}** '
           f'({report.overrides_text(entries[best["name"]])}), '
           f'{_summary_line(best["summaries"][metric])}{tie}.', '',
           'Search table and figures: [search_report.md](search_report.md).', '']
  if 'final' in outcome:
    lines += [f'Final evaluation (trained on all of data.train_file, evaluated on '
              f'`{test_file}`): {metric} {_summary_line(fs)}.', '']
  with open(os.path.join(root, 'hpsearch.md'), 'w') as f:
    f.write('\n'.join(lines))
  print(f'\nOutcome: {os.path.join(root, "hpsearch.md")}')
  return final_rc


if __name__ == '__main__':
  sys.exit(main())
