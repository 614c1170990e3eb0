r"""Kill -9 harness: a run SIGKILLed at random points ends bit for bit where an
uninterrupted one does (docs/reliability.md, "Killed runs").

  python experiments/reliability/chaos.py --kind=pretrain --kills=10 --workdir=/tmp/chaos
  python experiments/reliability/chaos.py --kind=finetune --kills=10 --workdir=/tmp/chaos_ft
  python -m experiments.reliability.chaos --processes=4 --kills=10 --workdir=/tmp/chaos4

1. ``reference/``: the tiny run, uninterrupted, through ``python launch.py``
   (with every pause point of ``bert_jax.train.pause_points`` set to 0 s, so
   its output says at which steps it evaluated and wrote ``best/``).
2. ``killed/``: the same command, SIGKILLed (its whole process group: what a
   lost VM does) at ``--kills`` points drawn with ``--seed``, relaunched after
   each kill until it completes. Each kill aims at one phase, in turn:
     startup  a random fraction of the last launch's time to its first step
              (imports, setup, restore, compile);
     train    right after the progress line of a random step;
     save     as soon as ``checkpoints/<s>.orbax-checkpoint-tmp*`` of a random
              save step appears (landed: the step was not committed);
     eval     at ``[pause] eval@<s>`` (mid-evaluation) of a random eval step;
     best     (fine-tuning) at ``[pause] best@<s>``: mid-write of ``best/``;
     broken   as train, then the newest committed checkpoint is made
              unreadable (garbage in its metadata, or its array files cut
              short, in turn): the relaunch must fall back to the one
              before, moving the broken one to ``checkpoints.broken/``.
   The targets lie after the newest committed checkpoint, so every kill costs
   recomputed steps, and move through the run from kill to kill.
3. Compares the final checkpoints' whole train state (params and optimizer
   state, as numpy) bitwise, metrics.jsonl (the per-launch throughput figures
   left out) and eval_results.json; for fine-tuning also ``best/`` (params
   bitwise, every other file byte for byte) and ``predictions/`` byte for byte.
4. Prints and writes ``WORKDIR/summary.json``; exits 1 unless all is equal
   and every kill was resumed from the newest committed step (after a
   ``broken`` kill: the newest good one, the broken one moved aside once).

``--processes=N`` (N > 1): every launch, the reference's too, is N processes
of one run on localhost (jax.distributed, the 8 CPU devices split between
them), and every kill SIGKILLs all of them, as a preempted slice would
(``chaos_launch``). ``broken`` is only aimed at when asked for (``--phases``),
and so is ``lost``: after a train step, process 0 (the coordinator), then
another process (drawn once per run), in turn, is SIGKILLed alone, as a lost VM is; every other
process must stop by itself within the heartbeat timeout (the launches get
``--heartbeat_timeout_s=15``) plus 45 s, with status 75 and a last line that
names the lost process and the step the relaunch resumes from; the relaunch
of all N must then resume from that step and end bit for bit.

Both kinds run on the CPU in fp32 with a shared persistent compilation cache
(``WORKDIR/jax_cache``), so a relaunch does not recompile. Fine-tuning starts
from a 2-step tiny pretraining run (``WORKDIR/init``) on the 4-topic fixture
(``tests/tasks/fixtures/topics_*.tsv``) as regression (see ``_regression_file``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from typing import Any

if __package__ in (None, ''):  # Run as a script: the repository on the path.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))

# pylint: disable=g-import-not-at-top
from absl import logging

from experiments.reliability import chaos_compare
from experiments.reliability import chaos_launch
# pylint: enable=g-import-not-at-top

REPO = chaos_launch.REPO
PHASES = {'pretrain': ('startup', 'train', 'save', 'eval'),
          'finetune': ('startup', 'train', 'save', 'eval', 'best')}
EXTRA_PHASES = ('broken', 'lost')  # Only when --phases names them.
# `lost` (N > 1 processes): the launches get this heartbeat timeout, and the
# survivors of a lost process must stop within it plus LOST_MARGIN_S.
HEARTBEAT_S, LOST_MARGIN_S = 15, 45
SUBDIRS = ('data', 'init', 'reference', 'killed', 'logs', 'jax_cache', 'summary.json')
EVAL_EVERY, SAVE_EVERY = 4, 3  # Interleaved: an eval kill redoes steps.

# A 2-layer, 64-wide model, 32 tokens, batch 16: a launch is mostly startup.
TINY_MODEL = ['--config.model.hidden_size=64', '--config.model.num_heads=2',
              '--config.model.intermediate_size=128',
              '--config.data.max_seq_length=32']
PRETRAIN = ['--config=configs/pretrain.py:size=tiny,runlocal', *TINY_MODEL,
            '--config.data.max_predictions_per_seq=5',
            '--config.data.dupe_factor=1', '--config.data.max_documents=60',
            '--config.data.tokenizer_vocab_size=500',
            '--config.train.global_batch_size=16',
            '--config.train.eval_batches=1', '--config.optim.warmup_steps=1']
FINETUNE = ['--config=configs/finetune.py:task=local_regression,runlocal',
            *TINY_MODEL[-1:], '--config.data.text_fields=sentence',
            '--config.data.label_field=score',
            '--config.train.global_batch_size=16']
TOPICS = os.path.join(REPO, 'tests', 'tasks', 'fixtures', 'topics_{}.tsv')


def commands(kind: str, base: str, steps: int, init_from: str = '',
             processes: int = 1, heartbeat_s: int | None = None
             ) -> tuple[list[str] | None, list[str]]:
  """(command of the init run or None, overrides of the run under test).

  With several processes the train state is sharded over all 8 devices
  (fsdp): each process writes and reads only its own shards, the case where
  processes can see a checkpoint differently.
  """
  common = [f'--config.train.num_steps={steps}', '--config.train.log_every_steps=1',
            f'--config.train.eval_every_steps={EVAL_EVERY}',
            f'--config.ckpt.every_steps={SAVE_EVERY}']
  if processes > 1:
    common.append(f'--config.mesh.fsdp={chaos_launch.DEVICES}')
  if heartbeat_s:
    common.append(f'--heartbeat_timeout_s={heartbeat_s}')
  if kind == 'pretrain':
    return None, PRETRAIN + common
  data = os.path.join(base, 'data')
  for split in ('train', 'eval'):
    _regression_file(TOPICS.format(split), os.path.join(data, f'{split}.tsv'))
  init = None if init_from else PRETRAIN + [
      '--config.train.num_steps=2', '--config.ckpt.every_steps=2',
      '--config.train.eval_every_steps=0',
      f'--workdir={os.path.join(base, "init")}']
  return init, FINETUNE + common + [
      f'--config.init_from={init_from or os.path.join(base, "init")}',
      f'--config.data.train_file={os.path.join(data, "train.tsv")}',
      f'--config.data.eval_file={os.path.join(data, "eval.tsv")}']


def _regression_file(src: str, dst: str) -> None:
  """The topic fixture as regression (score = the topic's index): a tiny
  model learns little in 16 steps, and a classifier stuck on one class
  would never improve its best score, while Pearson's r moves at every
  evaluation, so best/ is rewritten several times."""
  with open(src, encoding='utf-8') as f:
    rows = [line.rstrip('\n').split('\t') for line in f][1:]
  topics = sorted({label for _, label in rows})
  os.makedirs(os.path.dirname(dst), exist_ok=True)
  with open(dst, 'w', encoding='utf-8') as f:
    f.write('sentence\tscore\n')
    f.writelines(f'{text}\t{topics.index(label)}\n' for text, label in rows)


def plan(kind: str, kills: int, rng: random.Random,
         phases: tuple[str, ...]) -> list[str]:
  """KILLS phases, each of PHASES about equally often, in random order.

  A startup kill is never first: its delay is measured on a launch with a
  warm compilation cache, which the reference run is not.
  """
  del kind
  out = [phases[i % len(phases)] for i in range(kills)]
  rng.shuffle(out)
  if out and out[0] == 'startup':
    swap = next((i for i, p in enumerate(out) if p != 'startup'), 0)
    out[0], out[swap] = out[swap], out[0]
  return out


def _save_steps(last: int) -> list[int]:
  return sorted({s for s in range(SAVE_EVERY, last + 1, SAVE_EVERY)} | {last})


def _eval_steps(last: int) -> list[int]:
  return sorted({s for s in range(EVAL_EVERY, last + 1, EVAL_EVERY)} | {last})


def target(phase: str, resume: int, floor: int, last: int,
           best_steps: list[int], rng: random.Random, startup_s: float
           ) -> tuple[str, Any]:
  """(phase, target) for one kill after RESUME; the phase may change to one
  that still has a target (no best/ write left after RESUME: eval).

  Targets are among the first two of their kind at or after FLOOR (kill i of
  N: step (i + 1) * LAST / (N + 1)) and after RESUME, so the kills spread over
  the whole run, and the run gets there, committing checkpoints on the way.
  """
  floor = max(floor, resume + 1)

  def soon(steps):
    later = [s for s in steps if s > resume]
    return rng.choice(([s for s in later if s >= floor] or later)[:2])
  if phase == 'best':
    if any(s > resume for s in best_steps):
      return phase, soon(best_steps)
    phase = 'eval'
  if phase == 'startup':
    return phase, round(rng.uniform(0.05, 0.95) * startup_s, 3)
  if phase == 'save':
    return phase, soon(_save_steps(last))
  if phase == 'eval':
    return phase, soon(_eval_steps(last))
  if phase == 'broken':  # After two saves: the fallback is not step 0.
    floor = max(floor, min(2 * SAVE_EVERY + 1, last - 1))
  busy = set(_save_steps(last)) | set(_eval_steps(last))
  quiet = [s for s in range(floor, min(floor + 2 * SAVE_EVERY, last))
           if s not in busy]
  return (phase if phase in ('broken', 'lost') else 'train',
          rng.choice(quiet or list(range(resume + 1, last + 1))))


def break_newest(run_dir: str, how: str, skip: set[int]) -> int | None:
  """Makes the newest committed step (not in SKIP) unreadable, HOW: garbage
  in ``metadata/metadata`` (the cheap check finds it, on every process), or
  ``arrays``: the array files the last process wrote cut to 7 bytes (only the
  restore finds it, and with several processes only on the processes that
  read those shards). Returns the step (None: none committed yet)."""
  step = chaos_compare.newest_committed(run_dir, exclude=skip)
  if not step:
    return None
  step_dir = os.path.join(run_dir, 'checkpoints', str(step))
  if how == 'metadata':
    with open(os.path.join(step_dir, 'metadata', 'metadata'), 'wb') as f:
      f.write(os.urandom(64))
    return step
  state = os.path.join(step_dir, 'state')
  # OCDBT: one ocdbt.process_<i>/ per process with several, the arrays'
  # metadata in state/d/ (cutting those would fail the cheap check).
  mine = sorted(d for d in os.listdir(state) if d.startswith('ocdbt.process_'))
  data = os.path.join(state, mine[-1], 'd') if mine else os.path.join(state, 'd')
  for name in os.listdir(data):
    with open(os.path.join(data, name), 'r+b') as f:
      f.truncate(7)
  return step


def check_survivors(lost: dict[str, Any], committed: int, processes: int) -> None:
  """Sets LOST['ok']: every survivor stopped by itself with status 75 and a
  last line naming the lost process, all N and the step a relaunch resumes
  from (the newest committed one)."""
  victim = lost['victim']
  resume = (f'resumes from step {committed},' if committed else
            'no checkpoint is committed yet')
  lost['ok'] = all(
      v['exited_after_s'] is not None and v['rc'] == 75
      and v['last_line'].startswith(f'error: process {i} stopped because '
                                    f'process {victim}')
      and f'Relaunch all {processes} processes' in v['last_line']
      and resume in v['last_line']
      for i, v in lost['survivors'].items())


def _fresh_base(base: str) -> None:
  if os.path.isdir(base):
    foreign = sorted(set(os.listdir(base)) - set(SUBDIRS))
    if foreign:
      raise SystemExit(f'--workdir={base} holds {foreign[:5]}, which this '
                       'harness did not write; give it an empty or new folder.')
    for name in SUBDIRS[:-2]:  # The compilation cache is kept.
      shutil.rmtree(os.path.join(base, name), ignore_errors=True)
  os.makedirs(os.path.join(base, 'logs'), exist_ok=True)


def run_chaos(kind: str, kills: int, seed: int, base: str, steps: int = 16,
              phases: tuple[str, ...] | None = None, timeout: float = 600.0,
              init_from: str = '', cache_dir: str = '', log=print,
              processes: int = 1) -> dict[str, Any]:
  """Reference run, killed run, comparison; returns the summary (also in
  BASE/summary.json). INIT_FROM: fine-tune from it instead of a fresh 2-step
  pretraining run; CACHE_DIR: the compilation cache (BASE/jax_cache);
  PROCESSES: processes of every launch of the reference and the killed run
  (all of them killed at once)."""
  t0 = time.perf_counter()
  base = os.path.abspath(base)
  phases = tuple(phases or PHASES[kind])
  bad = sorted(set(phases) - set(PHASES[kind] + EXTRA_PHASES))
  if bad:
    raise SystemExit(f'--phases: {bad} not valid for --kind={kind}; choose '
                     f'from {PHASES[kind] + EXTRA_PHASES}.')
  if processes < 1 or chaos_launch.DEVICES % processes:
    raise SystemExit(f'--processes={processes}: must divide the '
                     f'{chaos_launch.DEVICES} CPU devices.')
  if 'lost' in phases and processes < 2:
    raise SystemExit('--phases=lost (one process of N lost) needs --processes >= 2.')
  _fresh_base(base)
  rng = random.Random(seed)
  env = chaos_launch.launch_env(cache_dir or os.path.join(base, 'jax_cache'))
  init, overrides = commands(kind, base, steps, init_from, processes,
                             HEARTBEAT_S if 'lost' in phases else None)
  if init is not None:
    chaos_launch.run_to_end(init, env, os.path.join(base, 'logs', 'init.log'),
                            timeout)
  ref_dir, run_dir = (os.path.join(base, d) for d in ('reference', 'killed'))
  ref = chaos_launch.run_to_end(
      overrides + [f'--workdir={ref_dir}'],
      dict(env, **chaos_launch.pause_env(['eval', 'best'], seconds=0)),
      os.path.join(base, 'logs', 'reference.log'), timeout,
      processes=processes)
  best_steps = ref.pause_steps('best')
  log(f'reference ({processes} process{"es" if processes > 1 else ""}): '
      f'{steps} steps in {ref.wall_s:.1f}s (first step after '
      f'{ref.first_step_s:.1f}s); best/ written at steps {best_steps}')
  cmd = overrides + [f'--workdir={run_dir}']
  records, startup_s = [], ref.first_step_s
  broken: set[int] = set()  # Broken by the harness, not yet moved aside.
  hows = iter(('arrays', 'metadata') * kills)
  # Lost processes: the coordinator, then another one, in turn.
  victims = iter([0, rng.randrange(1, processes)] * kills if processes > 1 else [])

  def still_broken() -> set[int]:
    return {s for s in broken if chaos_compare.still_there(
        run_dir, s, sum(r.get('broke') == s for r in records))}
  for i, phase in enumerate(plan(kind, kills, rng, phases)):
    broken = still_broken()
    resume = chaos_compare.newest_committed(run_dir, exclude=broken)
    if resume >= steps:
      log(f'kill {i + 1}: the run is already complete; stopping here.')
      break
    phase, aim = target(phase, resume, round((i + 1) * steps / (kills + 1)),
                        steps, best_steps, rng, startup_s)
    rec = chaos_launch.launch_and_kill(
        cmd, env, os.path.join(base, 'logs', f'killed_{i + 1:02d}.log'),
        phase, aim, run_dir, timeout, processes,
        victim=next(victims) if phase == 'lost' else 0,
        lost_wait_s=HEARTBEAT_S + LOST_MARGIN_S)
    broken = still_broken()
    if phase == 'broken' and rec['exit'] == 'killed':
      how = next(hows)
      rec['broke'] = break_newest(run_dir, how, broken)
      if rec['broke']:
        rec['broke_how'] = how
        broken.add(rec['broke'])
    rec.update(kill=i + 1, resume_before=resume,
               committed_after=chaos_compare.newest_committed(
                   run_dir, exclude=broken),
               left_behind=chaos_compare.leftovers(run_dir))
    if 'lost' in rec:
      check_survivors(rec['lost'], rec['committed_after'], processes)
    if rec['first_step_s'] is not None:  # The quickest launch seen: a warm one.
      startup_s = min(startup_s, rec['first_step_s'])
    records.append(rec)
    broke = (f'; broke step {rec["broke"]} ({rec["broke_how"]})'
             if rec.get('broke') else '')
    log(f'kill {i + 1}: {phase} {aim} -> '
        f'{"landed" if rec["landed"] else "MISSED"} ({rec["where"]}); '
        f'last step logged {rec["last_step"]}{broke}, newest committed '
        f'{rec["committed_after"]}, left {rec["left_behind"] or "nothing"}')
    if 'lost' in rec:
      log(f'  process {rec["lost"]["victim"]} lost: ' + '; '.join(
          f'process {j} exit {v["rc"]} after {v["exited_after_s"]} s'
          for j, v in rec['lost']['survivors'].items()) +
          f' -> {"OK" if rec["lost"]["ok"] else "WRONG"}; last line of one: '
          f'{next(iter(rec["lost"]["survivors"].values()))["last_line"]}')
    if rec['exit'] != 'killed':
      break  # Finished (a kill that came too late) or crashed.
  final = chaos_launch.run_to_end(cmd, env, os.path.join(base, 'logs',
                                                         'killed_final.log'),
                                  timeout, check=False, processes=processes)
  summary = chaos_compare.summarize(kind, seed, kills, steps, cmd, records,
                                    final, ref_dir, run_dir,
                                    time.perf_counter() - t0, processes)
  chaos_compare.write_summary(os.path.join(base, 'summary.json'), summary)
  log(chaos_compare.headline(summary))
  return summary


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
  p.add_argument('--kind', choices=sorted(PHASES), default='pretrain',
                 help='pretrain (built-in corpus) or finetune '
                      '(local_regression from a tiny pretraining run).')
  p.add_argument('--kills', type=int, default=10,
                 help='SIGKILLs of the run under test (default 10).')
  p.add_argument('--seed', type=int, default=0,
                 help='Draws the kill phases and targets (default 0).')
  p.add_argument('--workdir', required=True,
                 help='Base folder: init/, reference/, killed/, logs/, '
                      'jax_cache/, summary.json. Emptied first (the cache '
                      'is kept); refuses a folder with other files.')
  p.add_argument('--steps', type=int, default=16,
                 help=f'Training steps of the run (default 16; it saves '
                      f'every {SAVE_EVERY} and evaluates every {EVAL_EVERY}).')
  p.add_argument('--phases', default='',
                 help='Comma-separated phases to aim at (default: all of the '
                      'kind: ' + '; '.join(f'{k}: {",".join(v)}'
                                           for k, v in PHASES.items()) +
                      '; broken and lost (one process of N killed alone) '
                      'only when named).')
  p.add_argument('--processes', type=int, default=1,
                 help='Processes of every launch (1, 2, 4 or 8: the 8 CPU '
                      'devices split between them); a kill takes them all.')
  p.add_argument('--timeout', type=float, default=600.0,
                 help='Seconds one launch may take (default 600).')
  p.add_argument('--init_from', default='',
                 help='finetune: start from this checkpoint directory instead '
                      'of a fresh 2-step tiny pretraining run (WORKDIR/init).')
  a = p.parse_args(argv)
  logging.set_verbosity(logging.ERROR)  # orbax's INFO and WARNING lines.
  if a.kills < 0 or a.steps < 2 * SAVE_EVERY:
    p.error(f'--kills must be >= 0 and --steps >= {2 * SAVE_EVERY}.')
  phases = tuple(filter(None, a.phases.split(','))) or None
  summary = run_chaos(a.kind, a.kills, a.seed, a.workdir, a.steps, phases,
                      a.timeout, os.path.abspath(a.init_from) if a.init_from else '',
                      processes=a.processes)
  return 0 if summary['ok'] else 1


if __name__ == '__main__':
  sys.exit(main())
