"""Trials: one sweep entry x one seed, each a ``launch.py`` run in its own workdir.

A sweep entry with ``seeds=[0, 1, 2]`` becomes three trials,
``NAME.seed0``, ``NAME.seed1``, ``NAME.seed2``, each with ``config.seed`` set;
with one seed (the default) the trial is the entry itself, ``NAME``, and the
config keeps its own seed. A trial is finished when its
``eval_results.json`` exists (the trainer writes it atomically, last), so a
rerun skips it.

Each workdir gets ``overrides.json`` (what was asked for: base, the entry's
overrides, the ``--set`` ones, entry name and seed; the report groups trials
by entry from it), ``status.json`` (``running``, then ``done`` or ``failed``)
and ``launch.log`` (the run's stdout and stderr).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from typing import Any

from bert_jax import storage

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULT = 'eval_results.json'


@dataclasses.dataclass(frozen=True)
class Trial:
  """One run: an entry's overrides on a base config, with one seed."""
  name: str                    # Workdir name under the sweep root.
  entry: str                   # The sweep entry it belongs to.
  seed: int | None             # None: the config's own seed.
  base: str                    # Config spec, e.g. configs/pretrain.py:size=tiny.
  overrides: dict[str, Any]    # The entry's own overrides (not the seed).
  common: dict[str, str]       # --set overrides (an entry's own value wins).

  def config_overrides(self) -> dict[str, Any]:
    out = {**self.common, **self.overrides}
    if self.seed is not None:
      out['seed'] = self.seed
    return out

  def record(self) -> dict[str, Any]:
    """overrides.json (and a SLURM trial list's items)."""
    return {'name': self.name, 'entry': self.entry, 'seed': self.seed,
            'base': self.base, 'overrides': self.overrides, 'set': self.common}

  @classmethod
  def from_record(cls, d: dict[str, Any]) -> 'Trial':
    return cls(d['name'], d.get('entry', d['name']), d.get('seed'), d['base'],
               d.get('overrides', {}), d.get('set', {}))


def parse_seeds(text: str | int | list[int]) -> list[int]:
  """'3' -> [0, 1, 2]; '0,5,9' -> [0, 5, 9]; a list passes through."""
  if isinstance(text, (list, tuple)):
    seeds = [int(s) for s in text]
  elif isinstance(text, int) or re.fullmatch(r'\s*\d+\s*', str(text)):
    n = int(text)
    if n < 1:
      raise ValueError(f'seeds={n}: need at least 1.')
    return list(range(n))
  else:
    try:
      seeds = [int(s) for s in str(text).split(',') if s.strip()]
    except ValueError:
      raise ValueError(f'seeds={text!r}: expected N (seeds 0..N-1) or a comma-'
                       'separated list of integers, e.g. 0,1,2.') from None
  if not seeds or len(set(seeds)) != len(seeds):
    raise ValueError(f'seeds={text!r}: expected distinct integers.')
  return seeds


def expand(base: str, runs: list[tuple[str, dict[str, Any]]],
           common: dict[str, str], seeds: list[int],
           entry_seeds: dict[str, list[int]] | None = None,
           entry_bases: dict[str, str] | None = None) -> list[Trial]:
  """Entries x seeds -> trials (entry order, then seed order).

  Args:
    base: The sweep's BASE config spec.
    runs: [(entry name, overrides)].
    common: --set overrides.
    seeds: Seeds of every entry (one seed: trials named as their entry and
      the config's seed untouched, unless the entry sets 'seed' itself).
    entry_seeds: Per-entry seed lists that replace SEEDS.
    entry_bases: Per-entry config specs that replace BASE (e.g. a recipe).

  Raises:
    ValueError: An entry that sets 'seed' itself while having several seeds.
  """
  out = []
  for name, overrides in runs:
    own = (entry_seeds or {}).get(name, seeds)
    spec = (entry_bases or {}).get(name, base)
    if len(own) == 1:
      # Seed 0 is both configs' default: leave it to the config, so a
      # one-seed sweep runs exactly the commands it always did.
      seed = None if own == [0] or 'seed' in overrides or 'seed' in common \
          else own[0]
      out.append(Trial(name, name, seed, spec, overrides, common))
      continue
    if 'seed' in overrides:
      raise ValueError(f'entry {name!r} sets seed itself but has {len(own)} seeds '
                       f'({own}); drop its seed or its seeds.')
    if 'seed' in common:
      raise ValueError(f'--set seed={common["seed"]} fixes the seed, but entry '
                       f'{name!r} has {len(own)} seeds ({own}); use --seeds.')
    out += [Trial(f'{name}.seed{s}', name, s, spec, overrides, common) for s in own]
  return out


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
  parts = [f'{key.rsplit(".", 1)[-1]}-{render(value)}'
           for key, value in overrides.items()]
  name = re.sub(r'[^A-Za-z0-9._=+-]+', '_', '__'.join(parts)).strip('_.')
  return name[:120] or 'run'


def command(trial: Trial, workdir: str) -> list[str]:
  # Run with cwd=REPO, where BASE's relative config path resolves.
  return [sys.executable, 'launch.py', f'--config={trial.base}',
          f'--workdir={workdir}'] + [
              f'--config.{k}={render(v)}' for k, v in trial.config_overrides().items()]


def write_json(path: str, obj: Any) -> None:
  """Writes whole (bert_jax.storage): a reader never sees half a file."""
  storage.write_json(path, obj, indent=2, sort_keys=True, default=str)


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def is_finished(root: str, trial: Trial) -> bool:
  return os.path.exists(os.path.join(root, trial.name, RESULT))


def conflict(root: str, trial: Trial) -> str:
  """Why TRIAL cannot run in its workdir ('' = it can): another request ran there."""
  recorded = os.path.join(root, trial.name, 'overrides.json')
  if not os.path.exists(recorded):
    return ''
  old, new = read_json(recorded), trial.record()
  keys = ('base', 'overrides', 'set', 'seed')
  same = json.loads(json.dumps({k: old.get(k) for k in keys})) == \
      json.loads(json.dumps({k: new[k] for k in keys}))
  # Resuming (or skipping) would mix two configs under one name.
  return '' if same else (
      f'{os.path.join(root, trial.name)} was run with different overrides (see '
      f'{recorded}); delete it or use another --root.')


_print_lock = threading.Lock()


def say(msg: str) -> None:
  with _print_lock:
    print(msg, flush=True)


def run_trial(root: str, trial: Trial, tag: str = '',
              env: dict[str, str] | None = None) -> tuple[str, bool, str]:
  """Runs one trial to its end; returns (name, ok, message).

  Args:
    root: The sweep root; the trial runs in ROOT/NAME.
    trial: What to run.
    tag: Printed before the name ('[3/8]').
    env: Extra environment variables (e.g. CUDA_VISIBLE_DEVICES).
  """
  workdir = os.path.join(root, trial.name)
  log = os.path.join(workdir, 'launch.log')
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, 'overrides.json'), trial.record())
  cmd = command(trial, workdir)
  write_json(os.path.join(workdir, 'status.json'),
             {'status': 'running', 'started': time.time(), 'command': cmd,
              'env': env or {}})
  pinned = ''.join(f' {k}={v}' for k, v in (env or {}).items()
                   if k == 'CUDA_VISIBLE_DEVICES')
  say(f'{tag} {trial.name}: running{pinned} (log: {log})'.lstrip())
  t0 = time.perf_counter()
  with open(log, 'a') as f:
    f.write(f'$ {shlex.join(cmd)}\n')
    f.flush()
    rc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL, check=False,
                        env={**os.environ, **(env or {})}).returncode
  seconds = time.perf_counter() - t0
  if rc == 0 and os.path.exists(os.path.join(workdir, RESULT)):
    status, msg = 'done', f'{tag} {trial.name}: done in {seconds:.0f}s'
  else:
    why = (f'exit status {rc}' if rc else
           f'exited 0 but wrote no {RESULT} (no evaluation ran: too few '
           'held-out examples, or train.stop_after_steps stopped it early)')
    status = 'failed'
    msg = f'{tag} {trial.name}: FAILED ({why}); see {log}:\n' + tail(log)
  write_json(os.path.join(workdir, 'status.json'),
             {'status': status, 'returncode': rc, 'seconds': seconds,
              'command': cmd, 'env': env or {}})
  say(msg.lstrip())
  return trial.name, status == 'done', msg


def tail(path: str, lines: int = 15) -> str:
  """The log's last lines, without absl INFO/WARNING lines (the error is in a traceback)."""
  with open(path, errors='replace') as f:
    kept = [l for l in f if not re.match(r'[IW]\d{4} ', l)][-lines:]
  return ''.join('    | ' + line for line in kept).rstrip()
