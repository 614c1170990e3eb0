"""Launching ``launch.py`` for the kill -9 harness (``experiments/reliability/chaos.py``):
run to the end, or watch the run and SIGKILL it at one aimed point."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAUSE_ENV, PAUSE_SECONDS_ENV = 'BERT_JAX_PAUSE_AT', 'BERT_JAX_PAUSE_SECONDS'
_STEP = re.compile(r'^step (\d+)/(\d+) ')
_RESUMED = re.compile(r'^Resumed from step (\d+) ')
_PAUSE = re.compile(r'^\[pause\] (\w+)@(\d+)$')
_TMP = '.orbax-checkpoint-tmp'
_POLL_S = 0.001  # A tiny run's checkpoint write takes ~0.2-0.5 s here.


def launch_env(cache_dir: str) -> dict[str, str]:
  """The environment of every launch: CPU, and one persistent compilation
  cache (every compile cached, however quick), so a relaunch skips it."""
  env = dict(os.environ)
  env.pop(PAUSE_ENV, None)
  env.update(JAX_PLATFORMS='cpu', JAX_COMPILATION_CACHE_DIR=cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0',
             PYTHONUNBUFFERED='1')
  return env


def pause_env(points: list[str], seconds: float = 600.0,
              step: int | None = None) -> dict[str, str]:
  at = ','.join(p if step is None else f'{p}@{step}' for p in points)
  return {PAUSE_ENV: at, PAUSE_SECONDS_ENV: str(seconds)}


class Launch:
  """One ``python launch.py`` subprocess, its output read line by line."""

  def __init__(self, overrides: list[str], env: dict[str, str], log_path: str):
    self.t0 = time.perf_counter()
    self.lines: list[tuple[float, str]] = []
    self._log = open(log_path, 'w')  # pylint: disable=consider-using-with
    # Its own process group: the kill takes every thread and child at once.
    self.proc = subprocess.Popen(
        [sys.executable, 'launch.py', *overrides], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self) -> None:
    for line in self.proc.stdout:
      self.lines.append((time.perf_counter() - self.t0, line.rstrip('\n')))
      self._log.write(line)
      self._log.flush()

  def kill(self) -> None:
    try:
      os.killpg(self.proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # It had just exited.
      pass
    self.wait(30)

  def wait(self, timeout: float) -> int:
    rc = self.proc.wait(timeout)
    self._reader.join(10)
    self._log.close()
    return rc

  def seen(self, pattern: re.Pattern) -> list[re.Match]:
    return [m for _, line in list(self.lines) if (m := pattern.match(line))]

  def first_step_s(self) -> float | None:
    return next((t for t, line in list(self.lines)
                 if line.startswith('First step')), None)

  def last_step(self) -> int:
    return max((int(m.group(1)) for m in self.seen(_STEP)), default=0)

  def resumed_from(self) -> int:
    m = self.seen(_RESUMED)
    return int(m[0].group(1)) if m else 0

  def pause_steps(self, point: str) -> list[int]:
    return [int(m.group(2)) for m in self.seen(_PAUSE) if m.group(1) == point]

  def tail(self, n: int = 25) -> str:
    return '\n'.join(line for _, line in self.lines[-n:])


@dataclasses.dataclass
class Finished:
  rc: int
  wall_s: float
  first_step_s: float | None
  resumed_from: int
  last_step: int
  tail: str
  launch: Launch

  def pause_steps(self, point: str) -> list[int]:
    return self.launch.pause_steps(point)


def run_to_end(overrides: list[str], env: dict[str, str], log_path: str,
               timeout: float, check: bool = True) -> Finished:
  """Runs one launch to its end; with CHECK a failure stops the harness."""
  launch = Launch(overrides, env, log_path)
  try:
    rc = launch.wait(timeout)
  except subprocess.TimeoutExpired:
    launch.kill()
    rc = -1
  done = Finished(rc, time.perf_counter() - launch.t0, launch.first_step_s(),
                  launch.resumed_from(), launch.last_step(), launch.tail(),
                  launch)
  if check and rc != 0:
    raise SystemExit(f'launch.py {" ".join(overrides)} failed (exit {rc}; '
                     f'log {log_path}):\n{done.tail}')
  return done


def _tmp_dirs(run_dir: str, step: int) -> list[str]:
  try:
    names = os.listdir(os.path.join(run_dir, 'checkpoints'))
  except FileNotFoundError:
    return []
  return [n for n in names if n.startswith(f'{step}{_TMP}')]


def launch_and_kill(overrides: list[str], env: dict[str, str], log_path: str,
                    phase: str, aim: Any, run_dir: str, timeout: float
                    ) -> dict[str, Any]:
  """Launches, waits for the aimed point of PHASE, SIGKILLs; a record of it.

  ``landed`` says whether the kill hit the phase: for a save, that step's
  temporary folder was there and the step not committed after the kill; for
  startup, no first step had run; for eval and best, the run sat at the
  pause line; for train, the aimed step's line had been printed.
  """
  if phase in ('eval', 'best'):
    env = dict(env, **pause_env([phase], step=aim))
  launch = Launch(overrides, env, log_path)
  deadline = launch.t0 + timeout
  where = ''
  while launch.proc.poll() is None and time.perf_counter() < deadline:
    now = time.perf_counter() - launch.t0
    if phase == 'startup' and (now >= aim or launch.first_step_s() is not None):
      where = 'before the first step' if launch.first_step_s() is None else (
          'after the first step')
      if not launch.seen(re.compile('^JAX process')):
        where = 'during imports'
      break
    if phase == 'train' and launch.last_step() >= aim:
      where = f'after step {launch.last_step()}'
      break
    # After the first step: orbax has removed a killed save's leftovers.
    if (phase == 'save' and launch.first_step_s() is not None
        and _tmp_dirs(run_dir, aim)):
      where = f'with {_tmp_dirs(run_dir, aim)[0]} in checkpoints/'
      break
    if phase in ('eval', 'best') and aim in launch.pause_steps(phase):
      where = f'paused at {phase}@{aim}'
      break
    time.sleep(_POLL_S)
  exited = launch.proc.poll() is not None
  if exited:
    launch.wait(30)
  else:
    launch.kill()
  t_kill = time.perf_counter() - launch.t0
  committed = os.path.isdir(os.path.join(run_dir, 'checkpoints', str(aim)))
  landed = not exited and {
      'startup': where == 'before the first step' or where == 'during imports',
      'train': True,
      'save': bool(_tmp_dirs(run_dir, aim)) and not committed,
      'eval': True, 'best': True}[phase]
  if exited:
    where = f'exited by itself with {launch.proc.returncode} first'
  return {'phase': phase, 'target': aim, 'landed': landed, 'where': where,
          'killed_at_s': round(t_kill, 3),
          'exit': 'exited' if exited else 'killed',
          'returncode': launch.proc.returncode if exited else None,
          'first_step_s': launch.first_step_s(),
          'resumed_from': launch.resumed_from(),
          # Got past the restore (a kill before it says nothing of it).
          'restored': bool(launch.seen(_RESUMED)) or launch.first_step_s() is not None,
          'last_step': launch.last_step(),
          'tail': launch.tail() if exited else ''}
