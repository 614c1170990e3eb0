r"""Sweep runner: one ``launch.py`` subprocess per override dict of a sweep.

A sweep is a Python file with ``BASE`` (a config spec, e.g.
``'configs/pretrain.py:size=tiny,runlocal'``) and ``sweep()`` returning a list
of flat override dicts (``{'model.position_embedding': 'rope'}``), each with an
optional ``'name'``. Every entry runs in ``ROOT/<name>``::

  python -m experiments.sweep --sweep experiments/sweeps/variants.py \
      --root /tmp/variants --set train.num_steps=500
  python -m experiments.sweep --sweep experiments/sweeps/variants.py \
      --root /tmp/variants --only baseline,rope --dry_run

Entries whose ``eval_results.json`` exists are skipped, so an interrupted sweep
is resumed by running the same command again (a run cut short resumes from its
checkpoint). Each workdir gets ``launch.log`` (the run's stdout and stderr),
``overrides.json`` (what the runner asked for; ``experiments.report`` reads it)
and ``status.json``; ``ROOT/sweep.json`` lists the sweep's entries.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from typing import Any

from bert_jax import atomic_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SAFE_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._=+-]*$')


class SweepError(ValueError):
  """A sweep definition or invocation that cannot run; the message says why."""


# --- Loading and checking a sweep -------------------------------------------

def load_sweep(spec: str) -> tuple[str, list[dict[str, Any]], str]:
  """(BASE, entries, path) of a sweep file (or dotted module name)."""
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
  return base, [dict(e) for e in entries], path


def render(value: Any) -> str:
  """A Python value as ml_collections' flag parser reads it back."""
  if isinstance(value, bool) or value is None:
    return str(value)                       # True / False / None
  if isinstance(value, str):
    return value
  return repr(value)                        # ints, floats, tuples


def derive_name(overrides: dict[str, Any]) -> str:
  """'baseline' for {}, else 'field-value[__field-value]', filesystem-safe."""
  if not overrides:
    return 'baseline'
  parts = []
  for key, value in overrides.items():
    parts.append(f'{key.rsplit(".", 1)[-1]}-{render(value)}')
  name = re.sub(r'[^A-Za-z0-9._=+-]+', '_', '__'.join(parts)).strip('_.')
  return name[:120] or 'run'


def named_entries(entries: list[dict[str, Any]], path: str
                  ) -> list[tuple[str, dict[str, Any]]]:
  """[(name, overrides)], names checked to be safe and unique."""
  out: list[tuple[str, dict[str, Any]]] = []
  for i, entry in enumerate(entries):
    overrides = {k: v for k, v in entry.items() if k != 'name'}
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


def check_overrides(base: str, runs: list[tuple[str, dict[str, Any]]],
                    common: dict[str, str]) -> None:
  """Every key names a field of the base config and every value fits its type.

  Catches a typo before a sweep of ten runs each fails on it.
  """
  file, _, arg = base.partition(':')
  path = file if os.path.isabs(file) else os.path.join(REPO, file)
  if not os.path.exists(path):
    raise SweepError(f'BASE config file {path} does not exist.')
  if REPO not in sys.path:
    sys.path.insert(0, REPO)  # config files import `configs.common`.
  spec = importlib.util.spec_from_file_location('_sweep_base_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for name, overrides in runs:
    config = module.get_config(arg or None)
    merged = {**{k: (v, True) for k, v in common.items()},
              **{k: (v, False) for k, v in overrides.items()}}
    for key, (value, from_set) in merged.items():
      *groups, field = key.split('.')
      node = config
      try:
        for g in groups:
          node = node[g]
        current = node[field]
        node[field] = _coerce(value, current) if from_set else value
      except (KeyError, AttributeError, TypeError, ValueError) as e:
        what = '--set' if from_set else f'entry {name!r}'
        raise SweepError(f'{what}: cannot set {key}={render(value)} on {base}: '
                         f'{e}') from None


# --- Running ----------------------------------------------------------------

def command(base: str, workdir: str, overrides: dict[str, Any]) -> list[str]:
  # Run with cwd=REPO, where BASE's relative config path resolves.
  return [sys.executable, 'launch.py', f'--config={base}',
          f'--workdir={workdir}'] + [
              f'--config.{k}={render(v)}' for k, v in overrides.items()]


def _write_json(path: str, obj: Any) -> None:
  atomic_files.write_json(path, obj, indent=2, sort_keys=True, default=str)


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _record(base: str, name: str, overrides: dict[str, Any],
            common: dict[str, str]) -> dict[str, Any]:
  return {'name': name, 'base': base, 'overrides': overrides, 'set': common}


def _same_request(old: dict[str, Any], new: dict[str, Any]) -> bool:
  keys = ('base', 'overrides', 'set')
  return json.loads(json.dumps({k: old.get(k) for k in keys})) == \
      json.loads(json.dumps({k: new[k] for k in keys}))


_print_lock = threading.Lock()


def _say(msg: str) -> None:
  with _print_lock:
    print(msg, flush=True)


def run_one(base: str, root: str, name: str, overrides: dict[str, Any],
            common: dict[str, str], tag: str) -> tuple[str, bool, str]:
  """Runs one entry; returns (name, ok, message)."""
  workdir = os.path.join(root, name)
  log = os.path.join(workdir, 'launch.log')
  os.makedirs(workdir, exist_ok=True)
  _write_json(os.path.join(workdir, 'overrides.json'),
              _record(base, name, overrides, common))
  cmd = command(base, workdir, {**common, **overrides})
  _write_json(os.path.join(workdir, 'status.json'),
              {'status': 'running', 'started': time.time(), 'command': cmd})
  _say(f'{tag} {name}: running (log: {log})')
  t0 = time.perf_counter()
  with open(log, 'a') as f:
    f.write(f'$ {shlex.join(cmd)}\n')
    f.flush()
    rc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, check=False).returncode
  seconds = time.perf_counter() - t0
  results = os.path.join(workdir, 'eval_results.json')
  if rc == 0 and os.path.exists(results):
    status, msg = 'done', f'{tag} {name}: done in {seconds:.0f}s'
  else:
    why = (f'exit status {rc}' if rc else
           'exited 0 but wrote no eval_results.json (no evaluation ran: too few '
           'held-out examples, or train.stop_after_steps stopped it early)')
    status = 'failed'
    msg = f'{tag} {name}: FAILED ({why}); see {log}:\n' + _tail(log)
  _write_json(os.path.join(workdir, 'status.json'),
              {'status': status, 'returncode': rc, 'seconds': seconds, 'command': cmd})
  _say(msg)
  return name, status == 'done', msg


def _tail(path: str, lines: int = 15) -> str:
  """The log's last lines, without absl INFO/WARNING lines (the error is in a traceback)."""
  with open(path, errors='replace') as f:
    tail = [l for l in f if not re.match(r'[IW]\d{4} ', l)][-lines:]
  return ''.join('    | ' + line for line in tail).rstrip()


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m experiments.sweep', description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sweep', required=True,
                      help='Sweep file (experiments/sweeps/variants.py) or module.')
  parser.add_argument('--root', required=True, help='One workdir per entry under here.')
  parser.add_argument('--only', default='', help='Comma-separated entry names to run.')
  parser.add_argument('--dry_run', action='store_true', help='Print the commands only.')
  parser.add_argument('--set', dest='common', action='extend', nargs='+', default=[],
                      metavar='FIELD=VALUE',
                      help='Override added to every entry (an entry\'s own value wins).')
  parser.add_argument('--parallel', type=int, default=1,
                      help='Runs at once (each run uses every local device).')
  args = parser.parse_args(argv)
  try:
    base, entries, path = load_sweep(args.sweep)
    runs = named_entries(entries, path)
    common = parse_set(args.common)
    for name, overrides in runs:
      # --set changes the base; an entry's own value wins, so no ablation
      # silently loses what it varies.
      both = sorted(set(common) & set(overrides))
      if both:
        print(f'note: entry {name!r} keeps its own {", ".join(both)} over --set.')
    if args.only:
      wanted = [n.strip() for n in args.only.split(',') if n.strip()]
      unknown = sorted(set(wanted) - {n for n, _ in runs})
      if unknown:
        raise SweepError(f'--only {",".join(unknown)}: no such entries in {path}; '
                         f'entries: {", ".join(n for n, _ in runs)}.')
      runs = [(n, o) for n, o in runs if n in wanted]
    if args.parallel < 1:
      raise SweepError(f'--parallel={args.parallel} must be >= 1.')
    check_overrides(base, runs, common)
  except SweepError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2

  root = os.path.abspath(args.root)
  todo, failed = [], []
  if args.dry_run:
    print(f'# from {REPO}:')
  for name, overrides in runs:
    workdir = os.path.join(root, name)
    done = os.path.exists(os.path.join(workdir, 'eval_results.json'))
    recorded = os.path.join(workdir, 'overrides.json')
    if os.path.exists(recorded) and not _same_request(
        _read_json(recorded), _record(base, name, overrides, common)):
      # Resuming (or skipping) would mix two configs under one name.
      failed.append(name)
      print(f'error: {workdir} was run with different overrides '
            f'(see {recorded}); delete it or use another --root.', file=sys.stderr)
      continue
    if args.dry_run:
      cmd = shlex.join(command(base, workdir, {**common, **overrides}))
      print(f'# {name}' + (' (done: would skip)' if done else ''))
      print(f'{cmd} > {shlex.quote(os.path.join(workdir, "launch.log"))} 2>&1')
    elif done:
      print(f'{name}: skipped, {workdir}/eval_results.json exists')
    else:
      todo.append((name, overrides))
  if args.dry_run or not todo:
    return 1 if failed else 0

  os.makedirs(root, exist_ok=True)
  index_path = os.path.join(root, 'sweep.json')
  index = _read_json(index_path) if os.path.exists(index_path) else {'entries': {}}
  index.update(sweep=path, base=base, set=common)
  for name, overrides in runs:
    index['entries'][name] = overrides
  _write_json(index_path, index)

  n = len(todo)
  with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
    futures = [pool.submit(run_one, base, root, name, overrides, common,
                           f'[{i + 1}/{n}]')
               for i, (name, overrides) in enumerate(todo)]
    results = [f.result() for f in futures]
  failed += [name for name, ok, _ in results if not ok]
  if failed:
    print(f'error: {len(failed)} run(s) failed: ' + ', '.join(
        f'{name} (log: {os.path.join(root, name, "launch.log")})' for name in failed),
        file=sys.stderr)
    return 1
  print(f'All {n} run(s) done. Report: python -m experiments.report --root {root}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
