"""Several processes: jax.distributed, and a readable end when one of them dies.

When one process of a multi-process run dies (a lost VM, an OOM kill, kill -9),
jax's coordination service notices: the coordinator declares a process dead
after ``heartbeat_timeout_s`` without a heartbeat and tells every other
process; when the coordinator (process 0) itself is gone, the others' next
heartbeat or error poll finds no listener within seconds. Either way jax 0.10.2
then aborts each survivor from C++ (``LOG(QFATAL)``, or ``abort()``: exit
status 134, a stack trace and a dump of every Python thread), with no word on
what to do.

That abort cannot be caught in the process: the client's
``missed_heartbeat_callback`` exists, but ``jax.distributed.initialize`` does
not pass one, and a Python callback given to the client directly dies with
``std::bad_cast`` (its ``absl::Status`` argument has no Python type). So
``supervise`` runs the training process as a child: it forwards the child's
output and signals, and when the child ends by the coordination service's
abort it prints, as the last line, which process was lost, that all N must be
relaunched and the step the run resumes from; then it exits with
``EXIT_PEER_LOST``. docs/distributed.md, "When a process dies".
"""

from __future__ import annotations

import collections
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
from typing import IO, Sequence

from bert_jax import storage
from bert_jax import checkpoint_steps

DEFAULT_HEARTBEAT_TIMEOUT_S = 60   # jax's own default is 100 s.
EXIT_PEER_LOST = 75                # EX_TEMPFAIL: relaunching is the fix.
SUPERVISED_ENV = 'BERT_JAX_SUPERVISED'  # Set in the child: don't supervise again.
_TAIL_BYTES = 256 * 1024

# What jax's coordination service and client print before the abort.
_UNHEALTHY = re.compile(
    r'tasks are unhealthy \(stopped sending heartbeats\):\s*((?:\d+\s*)+)')
_TASK = re.compile(r'/job:[\w_]+/replica:\d+/task:(\d+)')
_FATAL = 'JAX distributed service detected fatal errors'
_POLLED = 'Polled an error from coordination service'
_COORDINATOR_GONE = ('Failed to send RPC to coordination service',
                     'coordination service has stopped',
                     'Socket closed', 'Connection reset by peer',
                     'failed to connect to all addresses', 'Connection refused')
_PROCESS_LINE = re.compile(r'JAX process (\d+)/(\d+)')


def lost_processes(log: str, process_id: int | None) -> list[int] | None:
  """Which processes LOG (a dead child's output) says were lost.

  None when the log shows no coordination-service failure (the child died
  of something else); [] when it shows one but names no process.
  """
  found = [int(t) for m in _UNHEALTHY.finditer(log) for t in m.group(1).split()]
  if found:
    return sorted(set(found) - {process_id})
  if not any(w in log for w in (_FATAL, _POLLED, *_COORDINATOR_GONE)):
    return None
  tasks = sorted({int(t) for t in _TASK.findall(log)} - {process_id})
  if tasks:
    return tasks
  if process_id != 0 and any(w in log for w in _COORDINATOR_GONE):
    return [0]
  return []


def message(lost: Sequence[int], *, process_id: int | None,
            num_processes: int | None, resume_step: int | None) -> str:
  """The last line a surviving process prints."""
  n = num_processes or '?'
  if lost:
    who = ', '.join(f'process {p}' + (' (the coordinator)' if p == 0 else '')
                    for p in lost)
    who += f' of {n} was lost' if len(lost) == 1 else f' of {n} were lost'
  else:
    who = f'another of the {n} processes was lost'
  resume = (f'the run resumes from step {resume_step}, its newest committed '
            'checkpoint' if resume_step is not None else
            'no checkpoint is committed yet, so the run starts again from step 0')
  me = f'process {process_id}' if process_id is not None else 'this process'
  return (f'error: {me} stopped because {who} (the JAX distributed service saw '
          f'it stop). Relaunch all {n} processes with the same command and '
          f'workdir: {resume}.')


def newest_committed_step(workdir: str | None) -> int | None:
  """The newest good checkpoint step in WORKDIR/checkpoints (None: none yet)."""
  if not workdir:
    return None
  return checkpoint_steps.newest_good_step(
      os.path.join(storage.absolute(workdir), 'checkpoints'))


def initialize(*, coordinator_address: str | None, num_processes: int | None,
               process_id: int | None,
               heartbeat_timeout_s: int = DEFAULT_HEARTBEAT_TIMEOUT_S,
               initialization_timeout_s: int = 300,
               shutdown_timeout_s: int = 300) -> None:
  """``jax.distributed.initialize`` with our heartbeat timeout."""
  import jax  # pylint: disable=g-import-not-at-top  # The supervisor needs no jax.
  if heartbeat_timeout_s < 1:
    raise ValueError(f'--heartbeat_timeout_s={heartbeat_timeout_s} must be >= 1.')
  jax.distributed.initialize(
      coordinator_address=coordinator_address, num_processes=num_processes,
      process_id=process_id, initialization_timeout=initialization_timeout_s,
      heartbeat_timeout_seconds=heartbeat_timeout_s,
      shutdown_timeout_seconds=shutdown_timeout_s)


def _die_with_parent() -> None:
  # A supervisor killed with SIGKILL must not leave its child training alone
  # (it would hold the others in their collectives): Linux PR_SET_PDEATHSIG.
  try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
  except (OSError, AttributeError):
    pass


class _Pump(threading.Thread):
  """Copies a child's stream to ours as it comes, keeping its tail."""

  def __init__(self, source: IO[bytes], target: IO[str]):
    super().__init__(daemon=True)
    self.source, self.target = source, target
    self.tail: collections.deque[bytes] = collections.deque()
    self.size = 0

  def run(self) -> None:
    fd = self.source.fileno()
    out = getattr(self.target, 'buffer', None)
    while chunk := os.read(fd, 65536):
      if out is not None:
        out.write(chunk)
        out.flush()
      else:
        self.target.write(chunk.decode('utf-8', 'replace'))
        self.target.flush()
      self.tail.append(chunk)
      self.size += len(chunk)
      while self.size > _TAIL_BYTES and len(self.tail) > 1:
        self.size -= len(self.tail.popleft())

  def text(self) -> str:
    return b''.join(self.tail).decode('utf-8', 'replace')


def supervise(command: Sequence[str], *, workdir: str | None,
              process_id: int | None, num_processes: int | None) -> int:
  """Runs COMMAND (this launcher again) as a child; returns the exit status.

  The child's stdout and stderr go to ours unchanged; SIGTERM and SIGINT are
  passed on (a preemption notice reaches the trainer). If the child ends by
  the coordination service's abort, one line says which process was lost and
  what to do, and the status is EXIT_PEER_LOST.
  """
  env = dict(os.environ, **{SUPERVISED_ENV: '1', 'PYTHONUNBUFFERED': '1'})
  child = subprocess.Popen(list(command), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, preexec_fn=_die_with_parent,
                           # Its own process group: a terminal's Ctrl-C
                           # reaches it once, passed on by us, not twice.
                           process_group=0)
  forwarded = {}
  for sig in (signal.SIGTERM, signal.SIGINT):
    forwarded[sig] = signal.signal(sig, lambda s, _: child.send_signal(s))
  pumps = [_Pump(child.stdout, sys.stdout), _Pump(child.stderr, sys.stderr)]
  for p in pumps:
    p.start()
  try:
    rc = child.wait()
  finally:
    for sig, old in forwarded.items():
      signal.signal(sig, old)
  for p in pumps:
    p.join()
  if rc in (0, 2):
    return rc
  out, err = pumps[0].text(), pumps[1].text()
  if process_id is None or num_processes is None:
    seen = _PROCESS_LINE.search(out)
    if seen:
      process_id, num_processes = int(seen.group(1)), int(seen.group(2))
  lost = lost_processes(err + out, process_id)
  if lost is None:
    return 128 - rc if rc < 0 else rc
  print(message(lost, process_id=process_id, num_processes=num_processes,
                resume_step=newest_committed_step(workdir)),
        file=sys.stderr, flush=True)
  return EXIT_PEER_LOST
