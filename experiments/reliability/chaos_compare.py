"""What the kill -9 harness (``experiments/reliability/chaos.py``) checks after the runs:
the workdir on disk between kills, and the killed run against the reference."""

from __future__ import annotations

import collections
import filecmp
import json
import os
import re
from typing import Any

import jax
import numpy as np

from bert_jax import storage
from bert_jax import pretrained
from bert_jax.train import checkpoint as ckpt_lib

# Measured over each launch's own window (a relaunch restarts the window and
# its first step includes the compile): not expected to repeat.
THROUGHPUT_KEYS = ('steps_per_sec', 'tokens_per_sec', 'padding_fraction', 'mfu')
# Temporary files and folders: ours (storage.write_text's, best.partial, best.old) and
# orbax's (<step>.orbax-checkpoint-tmp[-<time>]).
_TEMPORARY = re.compile(r'\.tmp($|-|\d)|orbax-checkpoint-tmp|^best\.(old|partial)$')


def newest_committed(workdir: str, exclude: set[int] | frozenset = frozenset()
                     ) -> int:
  """The newest good checkpoint step in WORKDIR (0: none), EXCLUDE left out
  (steps the harness broke where only a restore can tell)."""
  root = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(root):
    return 0
  good = [int(d) for d in os.listdir(root) if d.isdigit()
          and int(d) not in exclude
          and ckpt_lib.step_problem(os.path.join(root, d)) is None]
  return max(good, default=0)


def still_there(workdir: str, step: int, times: int = 1) -> bool:
  """Whether STEP, broken by the harness for the TIMES-th time, is still in
  checkpoints/ (not yet moved aside by a relaunch, nor saved again after)."""
  moved = str(step) if times <= 1 else f'{step}.{times - 1}'
  return (os.path.isdir(os.path.join(workdir, 'checkpoints', str(step)))
          and not os.path.isdir(os.path.join(workdir, ckpt_lib.BROKEN_DIR,
                                             moved)))


def moved_aside(workdir: str, records: list[dict[str, Any]]) -> dict[str, Any]:
  """checkpoints.broken/ against the steps the harness broke: each moved
  there exactly once (a second mover would have made ``<step>.1``)."""
  broke = collections.Counter(r['broke'] for r in records if r.get('broke'))
  want = sorted(f'{s}.{i}' if i else str(s) for s, n in broke.items()
                for i in range(n))
  root = os.path.join(workdir, ckpt_lib.BROKEN_DIR)
  found = sorted(os.listdir(root)) if os.path.isdir(root) else []
  return {'equal': want == found, 'expected': want, 'found': found}


def leftovers(workdir: str) -> list[str]:
  """What a killed run left that a finished one does not: temporary folders
  and files, the lock, moved-aside checkpoints (paths under WORKDIR)."""
  out = []
  for dirpath, dirnames, filenames in os.walk(workdir):
    rel = os.path.relpath(dirpath, workdir)
    hits = [n for n in dirnames + filenames if _TEMPORARY.search(n)
            or n in ('run.lock', ckpt_lib.BROKEN_DIR)]
    out += [os.path.normpath(os.path.join(rel, n)) for n in hits]
    dirnames[:] = [d for d in dirnames if d not in hits]  # Not inside them.
  return sorted(out)


def _flat(tree: Any) -> dict[str, np.ndarray]:
  return {jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def compare_arrays(a_dir: str, b_dir: str) -> dict[str, Any]:
  """Every leaf of two orbax pytrees, bitwise (shape, dtype and bytes)."""
  a, b = _flat(pretrained.restore_numpy(a_dir)), _flat(pretrained.restore_numpy(b_dir))
  differ = sorted(k for k in a.keys() & b.keys()
                  if a[k].shape != b[k].shape or a[k].dtype != b[k].dtype
                  or a[k].tobytes() != b[k].tobytes())
  missing = sorted(a.keys() ^ b.keys())
  return {'equal': not differ and not missing, 'leaves': len(a),
          'differing': differ[:10], 'missing': missing[:10]}


def compare_files(a_dir: str, b_dir: str, skip: tuple[str, ...] = ()
                  ) -> dict[str, Any]:
  """Every file under two folders, byte for byte (SKIP: top-level names)."""
  def files(root):
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
      if os.path.relpath(dirpath, root) == '.':
        dirnames[:] = [d for d in dirnames if d not in skip]
      out |= {os.path.relpath(os.path.join(dirpath, f), root)
              for f in filenames if f not in skip}
    return out
  fa, fb = files(a_dir), files(b_dir)
  differ = sorted(f for f in fa & fb if not filecmp.cmp(
      os.path.join(a_dir, f), os.path.join(b_dir, f), shallow=False))
  return {'equal': bool(fa) and fa == fb and not differ, 'files': len(fa),
          'differing': differ[:10], 'only_in_one': sorted(fa ^ fb)[:10]}


def _metrics(workdir: str) -> list[dict[str, Any]]:
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    recs = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k not in THROUGHPUT_KEYS} for r in recs]


def compare_metrics(ref_dir: str, run_dir: str) -> dict[str, Any]:
  a, b = _metrics(ref_dir), _metrics(run_dir)
  steps = collections.Counter((r['step'], r['split']) for r in b)
  first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
  return {'equal': a == b, 'records': [len(a), len(b)],
          'repeated_records': sum(n - 1 for n in steps.values()),
          'first_difference': None if first is None else [a[first], b[first]]}


def _results(workdir: str) -> dict[str, Any]:
  """eval_results.json without what each launch measures for itself: stats'
  *_seconds (data preparation) and the lengths it compiled steps for."""
  with open(os.path.join(workdir, 'eval_results.json')) as f:
    r = json.load(f)
  r['stats'] = {k: v for k, v in r.get('stats', {}).items()
                if not k.endswith('_seconds')}
  if 'length_buckets' in r:
    r['length_buckets'] = {k: v for k, v in r['length_buckets'].items()
                           if not k.endswith('_lengths')}
  return r


def summarize(kind: str, seed: int, kills: int, steps: int, cmd: list[str],
              records: list[dict[str, Any]], final: Any, ref_dir: str,
              run_dir: str, wall_s: float, processes: int = 1
              ) -> dict[str, Any]:
  """The harness's JSON summary (see ``experiments/reliability/chaos.py``)."""
  # The next launch that got past its restore says where kill i resumed from.
  resumed_from, nxt = [], final.resumed_from
  for r in reversed(records):
    resumed_from.insert(0, nxt)
    if r['restored']:
      nxt = r['resumed_from']
  for r, nxt in zip(records, resumed_from):
    r['next_resumed_from'] = nxt
    r['resumed_from_newest'] = nxt == r['committed_after']
    r['steps_recomputed'] = max(r['last_step'] - nxt, 0)
    r.pop('first_step_s', None)
  killed = [r for r in records if r['exit'] == 'killed']
  phases: dict[str, dict[str, int]] = {}
  for r in records:
    p = phases.setdefault(r['phase'], {'attempted': 0, 'landed': 0})
    p['attempted'] += 1
    p['landed'] += int(r['landed'])
  ckpt = lambda d: os.path.join(d, 'checkpoints', str(steps), 'state')
  done = final.rc == 0 and newest_committed(run_dir) == steps
  left = leftovers(run_dir)
  if any(r.get('broke') for r in records):  # Checked apart: moved_aside.
    left.remove(ckpt_lib.BROKEN_DIR)
  out: dict[str, Any] = {
      'kind': kind, 'seed': seed, 'steps': steps, 'kills_planned': kills,
      'processes': processes,
      'command': 'python launch.py ' + ' '.join(cmd) + (
          f' --coordinator_address=localhost:PORT --num_processes={processes}'
          ' --process_id=I' if processes > 1 else ''),
      'kills_attempted': len(records), 'kills_landed': sum(r['landed'] for r in records),
      'phases': phases,
      'resumed': f'{sum(r["resumed_from_newest"] for r in killed)}/{len(killed)}',
      'steps_recomputed': sum(r['steps_recomputed'] for r in killed),
      'final_launch': {'rc': final.rc, 'resumed_from': final.resumed_from,
                       'tail': final.tail if final.rc else ''},
      'left_behind_at_end': left,
      'moved_aside': moved_aside(run_dir, records),
      'wall_s': round(wall_s, 1), 'kills': records}
  if done:
    out['final_state'] = compare_arrays(ckpt(ref_dir), ckpt(run_dir))
    out['metrics'] = compare_metrics(ref_dir, run_dir)
    out['eval_results_equal'] = (_results(ref_dir) == _results(run_dir))
  checks = ['final_state', 'metrics', 'moved_aside']
  if kind == 'finetune' and done:
    out['best_params'] = compare_arrays(os.path.join(ref_dir, 'best', 'params'),
                                        os.path.join(run_dir, 'best', 'params'))
    out['best_files'] = compare_files(os.path.join(ref_dir, 'best'),
                                      os.path.join(run_dir, 'best'), ('params',))
    out['predictions'] = compare_files(os.path.join(ref_dir, 'predictions'),
                                       os.path.join(run_dir, 'predictions'))
    checks += ['best_params', 'best_files', 'predictions']
  out['ok'] = bool(done and all(out[c]['equal'] for c in checks)
                   and out['eval_results_equal'] and not out['left_behind_at_end']
                   and all(r['resumed_from_newest'] for r in killed)
                   and all(r['lost']['ok'] for r in records if 'lost' in r)
                   and len(killed) == kills)
  return out


def write_summary(path: str, summary: dict[str, Any]) -> None:
  storage.write_json(path, summary, indent=2, default=str)


def headline(s: dict[str, Any]) -> str:
  """One line: resumed N/N, steps recomputed, what is equal."""
  per_phase = ', '.join(f'{p} {v["landed"]}/{v["attempted"]}'
                        for p, v in sorted(s['phases'].items()))
  procs = s.get('processes', 1)
  kind = s['kind'] + (f' x{procs} processes' if procs > 1 else '')
  parts = [f'{kind}: {s["kills_landed"]}/{s["kills_attempted"]} kills '
           f'landed ({per_phase}); '
           f'resumed {s["resumed"]} from the newest committed step; '
           f'{s["steps_recomputed"]} steps recomputed']
  lost = [r['lost'] for r in s['kills'] if 'lost' in r]
  if lost:
    parts.append(f'{sum(x["ok"] for x in lost)}/{len(lost)} lost processes '
                 'stopped the others with the right last line')
  if s.get('moved_aside', {}).get('expected'):
    m = s['moved_aside']
    parts.append(f'broken steps {m["expected"]} moved aside '
                 f'{"once each" if m["equal"] else "WRONG: " + str(m["found"])}')
  for key, name in (('final_state', 'final params+optimizer state'),
                    ('metrics', 'metrics.jsonl'), ('best_params', 'best params'),
                    ('best_files', 'best/ files'), ('predictions', 'predictions')):
    if key in s:
      parts.append(f'{name} {"EQUAL" if s[key]["equal"] else "DIFFER"}')
  if 'eval_results_equal' in s:
    parts.append(f'eval_results.json {"EQUAL" if s["eval_results_equal"] else "DIFFER"}')
  if s['final_launch']['rc']:
    parts.append(f'final launch FAILED (exit {s["final_launch"]["rc"]})')
  if s['left_behind_at_end']:
    parts.append(f'left behind: {s["left_behind_at_end"]}')
  return '; '.join(parts) + f' -> {"OK" if s["ok"] else "FAIL"} ({s["wall_s"]}s)'
