"""Launching ``launch.py`` for the kill -9 harness (``experiments/reliability/chaos.py``):
run to the end, or watch the run and SIGKILL it at one aimed point.

With ``processes=N > 1`` a launch is N processes of one run on localhost
(jax.distributed, a fresh coordinator port per launch, the 8 CPU devices split
between them), each under the launcher's supervisor, and a kill SIGKILLs every
one of them and their children at once: a preempted slice. The harness reads
process 0's output (the progress lines); the others go to ``<log>.p<i>``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
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
DEVICES = 8  # CPU devices of one run, split between its processes.


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


def device_flags(env: dict[str, str], devices: int) -> str:
  """ENV's XLA_FLAGS with DEVICES fake CPU devices; its other flags kept
  (e.g. the tests' cheaper compiles, the same in every launch of a run)."""
  rest = re.sub(r'--xla_force_host_platform_device_count=\d+', '',
                env.get('XLA_FLAGS', '')).split()
  return ' '.join([f'--xla_force_host_platform_device_count={devices}', *rest])


def pause_env(points: list[str], seconds: float = 600.0,
              step: int | None = None) -> dict[str, str]:
  at = ','.join(p if step is None else f'{p}@{step}' for p in points)
  return {PAUSE_ENV: at, PAUSE_SECONDS_ENV: str(seconds)}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
  """PIDs below PID (children of children...), read from /proc."""
  parents: dict[int, list[int]] = {}
  for name in os.listdir('/proc'):
    if name.isdigit():
      try:
        with open(f'/proc/{name}/stat') as f:
          ppid = int(f.read().rsplit(')', 1)[1].split()[1])
      except (OSError, IndexError, ValueError):
        continue
      parents.setdefault(ppid, []).append(int(name))
  out, todo = [], [pid]
  while todo:
    kids = parents.get(todo.pop(), [])
    out += kids
    todo += kids
  return out


class Launch:
  """One run of ``python launch.py``: PROCESSES subprocesses, process 0's
  output read line by line."""

  def __init__(self, overrides: list[str], env: dict[str, str], log_path: str,
               processes: int = 1):
    self.t0 = time.perf_counter()
    self.lines: list[tuple[float, str]] = []
    self.log_path = log_path
    self._log = open(log_path, 'w')  # pylint: disable=consider-using-with
    self._other_logs = []
    self.procs: list[subprocess.Popen] = []
    port = _free_port()
    for i in range(processes):
      args, penv, out = [sys.executable, 'launch.py', *overrides], env, subprocess.PIPE
      if processes > 1:
        args += [f'--coordinator_address=localhost:{port}',
                 f'--num_processes={processes}', f'--process_id={i}']
        penv = dict(env, XLA_FLAGS=device_flags(env, DEVICES // processes))
      if i:
        out = open(f'{log_path}.p{i}', 'w')  # pylint: disable=consider-using-with
        self._other_logs.append(out)
      # Its own process group: the kill takes every thread and child at once.
      self.procs.append(subprocess.Popen(
          args, cwd=REPO, env=penv, stdout=out, stderr=subprocess.STDOUT,
          text=True, start_new_session=True))
    self.proc = self.procs[0]
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()
  def _read(self) -> None:
    for line in self.proc.stdout:
      self.lines.append((time.perf_counter() - self.t0, line.rstrip('\n')))
      self._log.write(line)
      self._log.flush()

  def kill(self) -> None:
    """SIGKILLs every process of the run and everything under them, at
    once (the supervisor's training child has a process group of its own)."""
    pids = [p.pid for p in self.procs if p.poll() is None]
    pids += [c for pid in pids for c in _descendants(pid)]
    for pid in pids:
      try:
        os.kill(pid, signal.SIGKILL)
      except ProcessLookupError:  # It had just exited.
        pass
    for p in self.procs:
      try:
        os.killpg(p.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
    deadline = time.perf_counter() + 10
    for pid in pids:  # Gone before the harness looks at the workdir.
      while _running(pid) and time.perf_counter() < deadline:
        time.sleep(0.01)
    self.wait(30)

  def lose(self, victim: int, wait_s: float) -> dict[int, float]:
    """SIGKILLs process VICTIM alone (its supervisor and training child, as
    a lost VM does) and waits up to WAIT_S for the others to exit by
    themselves; {survivor: seconds it took} for those that did."""
    pid = self.procs[victim].pid
    for p in [pid] + _descendants(pid):
      try:
        os.kill(p, signal.SIGKILL)
      except ProcessLookupError:
        pass
    t0 = time.perf_counter()
    others = [i for i in range(len(self.procs)) if i != victim]
    exited: dict[int, float] = {}
    while len(exited) < len(others) and time.perf_counter() - t0 < wait_s:
      for i in others:
        if i not in exited and self.procs[i].poll() is not None:
          exited[i] = round(time.perf_counter() - t0, 1)
      time.sleep(0.05)
    return exited

  def last_line(self, i: int) -> str:
    """The last non-empty line process I printed (after ``wait``)."""
    if i == 0:
      lines = [line for _, line in self.lines]
    else:
      with open(f'{self.log_path}.p{i}', errors='replace') as f:
        lines = f.read().splitlines()
    return next((line for line in reversed(lines) if line.strip()), '')

  def poll(self) -> int | None:
    """None while any process runs; else the run's exit status."""
    codes = [p.poll() for p in self.procs]
    if any(c is None for c in codes):
      return None
    return next((c for c in codes if c), 0)

  def wait(self, timeout: float) -> int:
    deadline = time.perf_counter() + timeout
    for p in self.procs:
      p.wait(max(deadline - time.perf_counter(), 0.1))
    self._reader.join(10)
    self._log.close()
    for f in self._other_logs:
      f.close()
    return self.poll()

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


def _running(pid: int) -> bool:
  """Whether PID exists and is not a zombie (a killed child not yet reaped)."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return False


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
               timeout: float, check: bool = True, processes: int = 1
               ) -> Finished:
  """Runs one launch to its end; with CHECK a failure stops the harness."""
  launch = Launch(overrides, env, log_path, processes)
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
                    phase: str, aim: Any, run_dir: str, timeout: float,
                    processes: int = 1, victim: int = 0,
                    lost_wait_s: float = 60.0) -> dict[str, Any]:
  """Launches, waits for the aimed point of PHASE, SIGKILLs; a record of it.

  PHASE ``lost`` SIGKILLs process VICTIM only, after the aimed step, and lets
  the others stop by themselves (for up to LOST_WAIT_S; any left then are
  killed): the record's ``lost`` holds each survivor's exit status, seconds
  and last line.

  ``landed`` says whether the kill hit the phase: for a save, that step's
  temporary folder was there and the step not committed after the kill; for
  startup, no first step had run; for eval and best, the run sat at the
  pause line; for train, the aimed step's line had been printed.
  """
  if phase in ('eval', 'best'):
    env = dict(env, **pause_env([phase], step=aim))
  launch = Launch(overrides, env, log_path, processes)
  deadline = launch.t0 + timeout
  where = ''
  while launch.poll() is None and time.perf_counter() < deadline:
    now = time.perf_counter() - launch.t0
    if phase == 'startup' and (now >= aim or launch.first_step_s() is not None):
      where = 'before the first step' if launch.first_step_s() is None else (
          'after the first step')
      if not launch.seen(re.compile('^JAX process')):
        where = 'during imports'
      break
    if phase in ('train', 'broken', 'lost') and launch.last_step() >= aim:
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
  exited = launch.poll() is not None
  lost = None
  if not exited and phase == 'lost':
    stopped = launch.lose(victim, lost_wait_s)
    launch.kill()  # Any survivor that did not stop in time.
    lost = {'victim': victim, 'survivors': {
        i: {'rc': launch.procs[i].returncode, 'exited_after_s': stopped.get(i),
            'last_line': launch.last_line(i)}
        for i in range(processes) if i != victim}}
  elif exited:
    launch.wait(30)
  else:
    launch.kill()
  t_kill = time.perf_counter() - launch.t0
  committed = os.path.isdir(os.path.join(run_dir, 'checkpoints', str(aim)))
  landed = not exited and {
      'startup': where == 'before the first step' or where == 'during imports',
      'train': True, 'broken': True,
      'save': bool(_tmp_dirs(run_dir, aim)) and not committed,
      'eval': True, 'best': True, 'lost': True}[phase]
  if exited:
    where = f'exited by itself with {launch.poll()} first'
  if lost is not None:
    where += f', process {victim} alone'
  return {'phase': phase, 'target': aim, 'landed': landed, 'where': where,
          **({'lost': lost} if lost is not None else {}),
          'killed_at_s': round(t_kill, 3),
          'exit': 'exited' if exited else 'killed',
          'returncode': launch.poll() if exited else None,
          'first_step_s': launch.first_step_s(),
          'resumed_from': launch.resumed_from(),
          # Got past the restore (a kill before it says nothing of it).
          'restored': bool(launch.seen(_RESUMED)) or launch.first_step_s() is not None,
          'last_step': launch.last_step(),
          'tail': launch.tail() if exited else ''}
