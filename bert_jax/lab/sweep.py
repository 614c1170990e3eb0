r"""Sweep runner: one ``launch.py`` subprocess per trial (entry x seed) of a sweep.

A sweep is a Python file with ``BASE`` (a config spec, e.g.
``'configs/pretrain.py:size=tiny,runlocal'``), ``sweep()`` returning a list
of flat override dicts (``{'model.position_embedding': 'rope'}``), each with an
optional ``'name'``, ``'seeds'`` (that entry's seeds) and ``'base'`` (another
config spec, e.g. a recipe), and optionally ``SEEDS`` (every entry's seeds,
default 1). Without a sweep file, ``--base`` and a search space (``--grid``,
``--random``, ``--space``; bert_jax/lab/search_space.py) make the entries::

  python -m bert_jax.lab.sweep --sweep experiments/sweeps/variants.py \
      --root /tmp/variants --seeds 3 --workers 2 --set train.num_steps=500
  python -m bert_jax.lab.sweep --base configs/finetune.py:task=sst2,size=tiny \
      --space bert_paper --root /tmp/grid --dry_run
  python -m bert_jax.lab.sweep --sweep experiments/sweeps/recipes.py \
      --root /scratch/recipes --seeds 3 --scheduler slurm \
      --sbatch_args='--partition=gpu --gres=gpu:1 --time=12:00:00'

Each trial runs in ``ROOT/<name>`` (``<entry>.seed<S>`` with several seeds;
bert_jax/lab/trials.py). Finished trials (``eval_results.json`` exists) are
skipped, so an interrupted sweep is resumed by running the same command again
(a run cut short resumes from its checkpoint). ``ROOT/sweep.json`` lists the
sweep's entries and trials; ``python -m bert_jax.lab.report ROOT`` reads them.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import os
import re
import shlex
import sys
from typing import Any

from bert_jax.lab import launchers
from bert_jax.lab import search_space
from bert_jax.lab import trials as trials_lib
from bert_jax.lab.trials import REPO, render  # noqa: F401  (render: public API)

_SAFE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._=+-]*$')
_ENTRY_KEYS = ('name', 'seeds', 'base')  # Entry keys that are not config fields.


class SweepError(ValueError):
  """A sweep definition or invocation that cannot run; the message says why."""


@dataclasses.dataclass
class Sweep:
  base: str
  entries: list[dict[str, Any]]
  path: str
  seeds: Any = None     # The file's SEEDS (None: not given).


# --- Loading and checking a sweep -------------------------------------------

def load(spec: str) -> Sweep:
  """The sweep of a sweep file (or dotted module name)."""
  path = spec if os.path.isabs(spec) else next(
      (p for p in (os.path.abspath(spec), os.path.join(REPO, spec))
       if os.path.exists(p)), os.path.abspath(spec))
  if os.path.exists(path):
    name = '_sweep_' + re.sub(r'\W', '_', os.path.splitext(os.path.basename(path))[0])
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
      raise SweepError(f'Sweep file {path} is not a Python module.')
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
  elif spec.endswith('.py') or os.sep in spec:
    raise SweepError(f'Sweep file {path} does not exist.')
  else:
    module = importlib.import_module(spec)
    path = getattr(module, '__file__', spec)
  base = getattr(module, 'BASE', None)
  fn = getattr(module, 'sweep', None)
  missing = [n for n, v in (('BASE', base), ('sweep', fn)) if v is None]
  if missing:
    raise SweepError(
        f'Sweep file {path} does not define {" and ".join(missing)}: a sweep '
        "needs BASE = 'configs/FILE.py:ARGS' and def sweep() -> list[dict].")
  if not isinstance(base, str) or not base:
    raise SweepError(f'{path}: BASE must be a config spec string, got {base!r}.')
  if not callable(fn):
    raise SweepError(f'{path}: sweep must be a function returning a list of dicts.')
  entries = fn()
  if not isinstance(entries, (list, tuple)) or not all(
      isinstance(e, dict) for e in entries):
    raise SweepError(f'{path}: sweep() must return a list of dicts, got {entries!r}.')
  if not entries:
    raise SweepError(f'{path}: sweep() returned no entries.')
  return Sweep(base, [dict(e) for e in entries], path, getattr(module, 'SEEDS', None))


def load_sweep(spec: str) -> tuple[str, list[dict[str, Any]], str]:
  """(BASE, entries, path) of a sweep file (or dotted module name)."""
  s = load(spec)
  return s.base, s.entries, s.path


derive_name = trials_lib.derive_name


def named_entries(entries: list[dict[str, Any]], path: str
                  ) -> list[tuple[str, dict[str, Any]]]:
  """[(name, overrides)], names checked to be safe and unique."""
  out: list[tuple[str, dict[str, Any]]] = []
  for i, entry in enumerate(entries):
    overrides = {k: v for k, v in entry.items() if k not in _ENTRY_KEYS}
    for key in overrides:
      if not isinstance(key, str) or not re.fullmatch(r'[A-Za-z_]\w*(\.\w+)*', key):
        raise SweepError(f'{path}: entry {i} has key {key!r}; override keys are '
                         "dotted config fields like 'model.norm_type'.")
    name = entry.get('name') or derive_name(overrides)
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in ('.', '..'):
      raise SweepError(f'{path}: entry {i} name {name!r} is not a safe directory '
                       'name (letters, digits, . _ = + -).')
    out.append((name, overrides))
  seen: dict[str, int] = {}
  for i, (name, _) in enumerate(out):
    if name in seen:
      raise SweepError(f'{path}: entries {seen[name]} and {i} are both named '
                       f'{name!r}; give one a "name".')
    seen[name] = i
  return out


def parse_set(items: list[str]) -> dict[str, str]:
  out = {}
  for item in items:
    key, sep, value = item.partition('=')
    key = key.strip().removeprefix('--').removeprefix('config.')
    if not sep or not key:
      raise SweepError(f'--set {item!r}: expected FIELD=VALUE, e.g. train.num_steps=50.')
    out[key] = value
  return out


def _coerce(text: str, current: Any) -> Any:
  """A --set string as the type of the field it overrides (for checking only)."""
  if isinstance(current, bool):
    if text.lower() in ('true', '1'):
      return True
    if text.lower() in ('false', '0'):
      return False
    raise TypeError(f'{text!r} is not a bool')
  if isinstance(current, int):
    return int(text)
  if isinstance(current, float):
    return float(text)
  return text


def base_config(base: str) -> Any:
  """The ConfigDict of a config spec ('configs/pretrain.py:size=tiny')."""
  file, _, arg = base.partition(':')
  path = file if os.path.isabs(file) else os.path.join(REPO, file)
  if not os.path.exists(path):
    raise SweepError(f'BASE config file {path} does not exist.')
  if REPO not in sys.path:
    sys.path.insert(0, REPO)  # configs/*.py (thin) import bert_jax.configs.
  spec = importlib.util.spec_from_file_location('_sweep_base_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  try:
    return module.get_config(arg or None)
  except ValueError as e:
    raise SweepError(f'config {base}: {e}') from None


def check_trials(trials: list[trials_lib.Trial]) -> None:
  """Every key names a field of its base config and every value fits its type.

  Catches a typo before a sweep of ten runs each fails on it.
  """
  configs: dict[str, Any] = {}
  for t in trials:
    if t.base not in configs:
      configs[t.base] = base_config(t.base)
    config = configs[t.base].copy_and_resolve_references()
    merged = {**{k: (v, True) for k, v in t.common.items()},
              **{k: (v, False) for k, v in t.overrides.items()}}
    for key, (value, from_set) in merged.items():
      *groups, field = key.split('.')
      node = config
      try:
        for g in groups:
          node = node[g]
        current = node[field]
        node[field] = _coerce(value, current) if from_set else value
      except (KeyError, AttributeError, TypeError, ValueError) as e:
        what = '--set' if from_set else f'entry {t.entry!r}'
        raise SweepError(f'{what}: cannot set {key}={render(value)} on {t.base}: '
                         f'{e}') from None


# --- Command line -------------------------------------------------------------

def add_run_flags(parser: argparse.ArgumentParser) -> None:
  """Flags shared with bert_jax.lab.hpsearch: seeds, --set, where trials run."""
  parser.add_argument('--root', help='One workdir per trial under here.')
  parser.add_argument('--set', dest='common', action='extend', nargs='+', default=[],
                      metavar='FIELD=VALUE',
                      help='Override added to every entry (an entry\'s own value wins).')
  parser.add_argument('--seeds', default=None,
                      help='N (seeds 0..N-1) or a list (0,3,7) for every entry '
                           'without its own; default the sweep\'s SEEDS or 1.')
  parser.add_argument('--workers', '--parallel', dest='workers', type=int, default=1,
                      help='Trials at once on this host (each its own subprocess; '
                           'with GPUs each worker gets its own, see --gpus), or '
                           'with --scheduler slurm the most array tasks at once.')
  parser.add_argument('--gpus', default='auto',
                      help="GPUs to deal to the workers: auto (CUDA_VISIBLE_DEVICES"
                           ", else nvidia-smi) | none | 0,1,2,3.")
  parser.add_argument('--scheduler', default='local', choices=('local', 'slurm'),
                      help='local: run here; slurm: write and submit a job array.')
  parser.add_argument('--sbatch_args', default='',
                      help="Extra sbatch options, e.g. '--partition=gpu --gres=gpu:1'.")
  parser.add_argument('--dry_run', action='store_true', help='Print the commands only.')


def add_space_flags(parser: argparse.ArgumentParser) -> None:
  parser.add_argument('--space', default='', help=f'A named space: {sorted(search_space.SPACES)}.')
  parser.add_argument('--grid', action='append', default=[], metavar='FIELD=V1,V2',
                      help='A grid field (repeat the flag: every combination).')
  parser.add_argument('--random', type=int, default=0, metavar='N',
                      help='Draw N distinct settings instead of the whole grid.')
  parser.add_argument('--dist', action='append', default=[], metavar='FIELD=KIND:ARGS',
                      help='With --random: choice:A,B | uniform:LO:HI | loguniform:LO:HI.')
  parser.add_argument('--search_seed', type=int, default=0,
                      help='Seed of the --random draws (not of the runs).')


def plan(args: argparse.Namespace) -> tuple[Sweep, list[trials_lib.Trial]]:
  """The sweep and its trials, from --sweep or --base + a space; checked."""
  settings = search_space.settings_from_args(args.space, args.grid, args.random,
                                             args.dist, args.search_seed)
  if args.sweep:
    if settings:
      raise SweepError('--grid/--random/--space make the entries of a --base '
                       'sweep; with --sweep FILE, write them in the file.')
    s = load(args.sweep)
    if args.base:
      s.base = args.base
  elif args.base:
    if not settings:
      raise SweepError('--base needs a search space: --grid FIELD=V1,V2, '
                       '--random N --dist ..., or --space NAME.')
    s = Sweep(args.base, settings, '--base ' + args.base)
  else:
    raise SweepError('say what to run: --sweep FILE, or --base CONFIG with '
                     '--grid/--random/--space.')
  runs = named_entries(s.entries, s.path)
  try:
    seeds = trials_lib.parse_seeds(args.seeds if args.seeds is not None
                                   else s.seeds if s.seeds is not None else 1)
    by_name = {n: e for (n, _), e in zip(runs, s.entries)}
    own = {n: trials_lib.parse_seeds(e['seeds']) for n, e in by_name.items()
           if 'seeds' in e}
    bases = {n: e['base'] for n, e in by_name.items() if 'base' in e}
    common = parse_set(args.common)
    trials = trials_lib.expand(s.base, runs, common, seeds, own, bases)
  except ValueError as e:
    raise SweepError(f'{s.path}: {e}') from None
  for name, overrides in runs:
    # --set changes the base; an entry's own value wins, so no ablation
    # silently loses what it varies.
    both = sorted(set(common) & set(overrides))
    if both:
      print(f'note: entry {name!r} keeps its own {", ".join(both)} over --set.')
  if getattr(args, 'only', ''):
    wanted = [n.strip() for n in args.only.split(',') if n.strip()]
    unknown = sorted(set(wanted) - {n for n, _ in runs})
    if unknown:
      raise SweepError(f'--only {",".join(unknown)}: no such entries in {s.path}; '
                       f'entries: {", ".join(n for n, _ in runs)}.')
    trials = [t for t in trials if t.entry in wanted]
  if args.workers < 1:
    raise SweepError(f'--workers={args.workers} must be >= 1.')
  if not args.root:
    raise SweepError('--root DIR is required: each trial runs in DIR/NAME.')
  check_trials(trials)
  return s, trials


def execute(s: Sweep, trials: list[trials_lib.Trial], args: argparse.Namespace,
            label: str = 'sweep', root: str = '',
            entries: dict[str, dict[str, Any]] | None = None) -> int:
  """Skips finished trials, runs (or submits) the rest; 0 when all are done.

  Args:
    s: The sweep (for ROOT/sweep.json).
    trials: What to run.
    args: The parsed flags (dry_run, workers, gpus, scheduler, set, ...).
    label: The SLURM job name.
    root: The sweep root (default --root).
    entries: Each entry's overrides for the report (default: its trials').
  """
  root = os.path.abspath(root or args.root)
  todo, failed = [], []
  if args.dry_run:
    print(f'# from {REPO}:')
  for t in trials:
    workdir = os.path.join(root, t.name)
    done = trials_lib.is_finished(root, t)
    why = trials_lib.conflict(root, t)
    if why:
      failed.append(t.name)
      print(f'error: {why}', file=sys.stderr)
      continue
    if args.dry_run:
      cmd = shlex.join(trials_lib.command(t, workdir))
      print(f'# {t.name}' + (' (done: would skip)' if done else ''))
      print(f'{cmd} > {shlex.quote(os.path.join(workdir, "launch.log"))} 2>&1')
    elif done:
      print(f'{t.name}: skipped, {workdir}/{trials_lib.RESULT} exists')
    else:
      todo.append(t)
  if args.dry_run or not todo:
    return 1 if failed else 0

  os.makedirs(root, exist_ok=True)
  index_path = os.path.join(root, 'sweep.json')
  index = trials_lib.read_json(index_path) if os.path.exists(index_path) else {}
  index.setdefault('entries', {})
  index.setdefault('trials', {})
  index.update(sweep=s.path, base=s.base, set=parse_set(args.common))
  for t in trials:
    index['entries'][t.entry] = (entries or {}).get(t.entry, t.overrides)
    index['trials'][t.name] = t.record()
  trials_lib.write_json(index_path, index)

  if args.scheduler == 'slurm':
    return launchers.submit_slurm(root, todo, args.workers, args.sbatch_args,
                                  job_name=label) or (1 if failed else 0)
  results = launchers.run_local(root, todo, args.workers,
                                launchers.visible_gpus(args.gpus))
  failed += [name for name, ok, _ in results if not ok]
  if failed:
    print(f'error: {len(failed)} run(s) failed: ' + ', '.join(
        f'{name} (log: {os.path.join(root, name, "launch.log")})' for name in failed),
        file=sys.stderr)
    return 1
  print(f'All {len(todo)} run(s) done. Report: python -m bert_jax.lab.report {root}')
  return 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.lab.sweep', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sweep', default='',
                      help='Sweep file (experiments/sweeps/variants.py) or module.')
  parser.add_argument('--base', default='',
                      help='Config spec: with a space, the base of its entries; with '
                           '--sweep, replaces the file\'s BASE.')
  parser.add_argument('--only', default='', help='Comma-separated entry names to run.')
  add_run_flags(parser)
  add_space_flags(parser)
  parser.add_argument('--trial_list', default='',
                      help='A SLURM array task: run trial --trial of this list.')
  parser.add_argument('--trial', type=int, default=None,
                      help='Index into --trial_list ($SLURM_ARRAY_TASK_ID).')
  args = parser.parse_args(argv)
  if args.trial_list or args.trial is not None:
    if not args.trial_list or args.trial is None:
      print('error: --trial_list FILE and --trial I go together (an array task).',
            file=sys.stderr)
      return 2
    return launchers.run_listed(args.trial_list, args.trial)
  try:
    s, trials = plan(args)
  except (SweepError, search_space.SpaceError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  label = os.path.splitext(os.path.basename(s.path))[0] if args.sweep else 'search'
  return execute(s, trials, args, label)


if __name__ == '__main__':
  sys.exit(main())
