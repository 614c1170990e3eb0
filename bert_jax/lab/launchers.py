"""Where trials run: N at once on this host, or as a SLURM job array.

Local (``--workers N``): N trials at once, each a ``launch.py`` subprocess.
On a host with GPUs (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``) each
of the N worker slots gets its own GPUs, dealt round-robin (8 GPUs, 2
workers: slot 0 gets 0,2,4,6 and slot 1 gets 1,3,5,7); with more workers
than GPUs, slot k shares GPU k mod #GPUs, and JAX's preallocation is turned
off so that several processes fit on one GPU. One worker keeps every device.

SLURM (``--scheduler slurm``): the unfinished trials go into
``ROOT/slurm/job-N.json``; ``ROOT/slurm/job-N.sbatch`` runs array task I as
``python -m bert_jax.lab.sweep --trial_list ROOT/slurm/job-N.json --trial I``,
and ``sbatch --array=0-K[%W]`` submits it (W = --workers when > 1: at most W
at once). Each task is then an ordinary trial, so the report reads whatever
has finished and a resubmission skips it.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import shlex
import shutil
import subprocess
import sys
from typing import Callable

from bert_jax.lab import trials as trials_lib


def visible_gpus(spec: str = 'auto') -> list[str]:
  """GPU ids to pin trials to: SPEC 'auto' | 'none' | '0,1,...'.

  'auto' reads CUDA_VISIBLE_DEVICES when set (empty or -1: none), else asks
  ``nvidia-smi -L``; no nvidia-smi means no GPUs (a CPU or TPU host).
  """
  if spec == 'none':
    return []
  if spec != 'auto':
    return [g.strip() for g in spec.split(',') if g.strip()]
  env = os.environ.get('CUDA_VISIBLE_DEVICES')
  if env is not None:
    return [g.strip() for g in env.split(',') if g.strip() and g.strip() != '-1']
  if not shutil.which('nvidia-smi'):
    return []
  try:
    out = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True,
                         timeout=30, check=False).stdout
  except (OSError, subprocess.TimeoutExpired):
    return []
  return [str(i) for i, line in enumerate(
      l for l in out.splitlines() if l.startswith('GPU '))]


def slot_envs(workers: int, gpus: list[str]) -> list[dict[str, str]]:
  """The environment each of WORKERS slots runs its trials with."""
  if workers <= 1 or not gpus:
    return [{} for _ in range(max(workers, 1))]
  if workers <= len(gpus):
    return [{'CUDA_VISIBLE_DEVICES': ','.join(gpus[k::workers])}
            for k in range(workers)]
  # Several processes per GPU: JAX would otherwise take 75% of each GPU's
  # memory in the first process and the next would fail to start.
  return [{'CUDA_VISIBLE_DEVICES': gpus[k % len(gpus)],
           'XLA_PYTHON_CLIENT_PREALLOCATE': 'false'} for k in range(workers)]


def run_local(root: str, todo: list[trials_lib.Trial], workers: int,
              gpus: list[str],
              run: Callable[..., tuple[str, bool, str]] = trials_lib.run_trial
              ) -> list[tuple[str, bool, str]]:
  """Runs the trials in ``todo``, ``workers`` at a time, each on its slot's devices."""
  slots: queue.Queue = queue.Queue()
  for env in slot_envs(workers, gpus):
    slots.put(env)
  n = len(todo)

  def one(i: int, trial: trials_lib.Trial):
    env = slots.get()  # A free slot: never two trials on one slot's GPUs.
    try:
      return run(root, trial, f'[{i + 1}/{n}]', env=env)
    finally:
      slots.put(env)

  with concurrent.futures.ThreadPoolExecutor(max_workers=max(workers, 1)) as pool:
    futures = [pool.submit(one, i, t) for i, t in enumerate(todo)]
    return [f.result() for f in futures]


def _next_job(slurm_dir: str) -> int:
  taken = [int(f[4:-5]) for f in os.listdir(slurm_dir)
           if f.startswith('job-') and f.endswith('.json') and f[4:-5].isdigit()]
  return max(taken, default=-1) + 1


def sbatch_script(trial_list: str, job_name: str, log_pattern: str,
                  python: str = sys.executable) -> str:
  """The job-array script: task I runs trial I of TRIAL_LIST."""
  return '\n'.join([
      '#!/bin/bash',
      f'#SBATCH --job-name={job_name}',
      f'#SBATCH --output={log_pattern}',
      '# Written by python -m bert_jax.lab.sweep --scheduler slurm; each array',
      '# task runs one trial (its own workdir, launch.log and status.json).',
      'set -euo pipefail',
      f'cd {shlex.quote(trials_lib.REPO)}',
      f'exec {shlex.quote(python)} -m bert_jax.lab.sweep --trial_list '
      f'{shlex.quote(trial_list)} --trial "$SLURM_ARRAY_TASK_ID"',
      ''])


def submit_slurm(root: str, todo: list[trials_lib.Trial], workers: int,
                 sbatch_args: str = '', job_name: str = 'sweep') -> int:
  """Writes the trial list and the array script, submits it; returns the exit status."""
  slurm_dir = os.path.join(root, 'slurm')
  os.makedirs(slurm_dir, exist_ok=True)
  job = _next_job(slurm_dir)
  trial_list = os.path.join(slurm_dir, f'job-{job}.json')
  script = os.path.join(slurm_dir, f'job-{job}.sbatch')
  trials_lib.write_json(trial_list, {'root': root,
                                     'trials': [t.record() for t in todo]})
  with open(script, 'w') as f:
    f.write(sbatch_script(trial_list, job_name,
                          os.path.join(slurm_dir, f'job-{job}-%A_%a.out')))
  os.chmod(script, 0o755)
  array = f'--array=0-{len(todo) - 1}' + (f'%{workers}' if workers > 1 else '')
  cmd = ['sbatch', array, *shlex.split(sbatch_args), script]
  if not shutil.which('sbatch'):
    print(f'error: sbatch is not on PATH; the job is written, submit it yourself:\n'
          f'  {shlex.join(cmd)}', file=sys.stderr)
    return 1
  print(f'$ {shlex.join(cmd)}', flush=True)
  r = subprocess.run(cmd, capture_output=True, text=True, check=False)
  sys.stdout.write(r.stdout)
  sys.stderr.write(r.stderr)
  if r.returncode:
    print(f'error: sbatch exited {r.returncode}; the job is in {script}.',
          file=sys.stderr)
    return 1
  print(f'{len(todo)} trial(s) submitted as job array {script} ({trial_list}). '
        f'When some have finished: python -m bert_jax.lab.report {root}')
  return 0


def run_listed(trial_list: str, index: int) -> int:
  """One array task: trial INDEX of TRIAL_LIST (skipped when finished)."""
  try:
    listed = trials_lib.read_json(trial_list)
  except FileNotFoundError:
    print(f'error: --trial_list {trial_list} does not exist.', file=sys.stderr)
    return 2
  items = listed['trials']
  if not 0 <= index < len(items):
    print(f'error: --trial {index}: {trial_list} has trials 0-{len(items) - 1}.',
          file=sys.stderr)
    return 2
  root, trial = listed['root'], trials_lib.Trial.from_record(items[index])
  if trials_lib.is_finished(root, trial):
    print(f'{trial.name}: skipped, {root}/{trial.name}/{trials_lib.RESULT} exists')
    return 0
  _, ok, _ = trials_lib.run_trial(root, trial, f'[task {index}]')
  return 0 if ok else 1
