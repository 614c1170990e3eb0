"""One process of several lost: what the survivors' supervisor says
(bert_jax/train/peers.py). The end-to-end kill is in test_multiprocess.py."""

import os
import sys

from bert_jax.train import peers

# Process 0's output when process 1 was killed (jax 0.10.2, 2 processes).
HEARTBEATS_LOG = """\
step 10/100000 | loss 6.8997 | 0.39 steps/s
E1207 02:47:38.747923   31582 coordination_service.cc:1549] [6401109519786410520] Use error polling to propagate the following error to all tasks: UNAVAILABLE: The following tasks are unhealthy (stopped sending heartbeats):
1
The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. preemption, eviction) to debug further. [type.googleapis.com/tensorflow.CoordinationServiceError='']
E1207 02:47:38.748368   31593 coordination_service_agent.cc:289] Polled an error from coordination service (this can be an error from this or another task).
Fatal Python error: Aborted
"""


def test_lost_process_from_heartbeats():
  assert peers.lost_processes(HEARTBEATS_LOG, 0) == [1]
  assert peers.lost_processes(HEARTBEATS_LOG.replace(':\n1\n', ':\n2\n3\n'), 0) == [2, 3]


def test_coordinator_lost():
  log = ('E1207 coordination_service_agent.cc] Polled an error from coordination '
         'service ... UNAVAILABLE: Failed to send RPC to coordination service. '
         'Either the leader task was preempted/died/restarted unexpectedly or '
         'this task is experiencing network issues.')
  assert peers.lost_processes(log, 1) == [0]


def test_other_failures_are_not_a_lost_peer():
  assert peers.lost_processes('Traceback ...\nValueError: bad\n', 0) is None


def test_message_says_who_and_what_to_do():
  line = peers.message([0], process_id=1, num_processes=4, resume_step=20)
  assert line.startswith('error: process 1 stopped because process 0 (the coordinator) of 4 was lost')
  assert 'Relaunch all 4 processes' in line and 'resumes from step 20' in line
  line = peers.message([], process_id=None, num_processes=2, resume_step=None)
  assert 'another of the 2 processes' in line and 'from step 0' in line


def test_newest_committed_step(tmp_path):
  assert peers.newest_committed_step(str(tmp_path)) is None
  os.makedirs(tmp_path / 'checkpoints' / '4')  # No commit marker: not good.
  assert peers.newest_committed_step(str(tmp_path)) is None


def _child(code):
  return [sys.executable, '-c', code]


def test_supervise_names_the_lost_process_last(tmp_path, capfd):
  log = HEARTBEATS_LOG.replace('\n', '\\n')
  rc = peers.supervise(
      _child(f"import os, sys; print('JAX process 0/2, backend cpu'); "
             f"sys.stderr.write('{log}'); sys.stderr.flush(); os.abort()"),
      workdir=str(tmp_path), process_id=None, num_processes=None)
  out, err = capfd.readouterr()
  assert rc == peers.EXIT_PEER_LOST
  assert 'JAX process 0/2' in out  # The child's output passes through.
  last = err.strip().splitlines()[-1]
  assert last.startswith('error: process 0 stopped because process 1 of 2 was lost'), last
  assert 'starts again from step 0' in last


def test_supervise_keeps_other_endings():
  assert peers.supervise(_child('pass'), workdir=None, process_id=0,
                         num_processes=2) == 0
  assert peers.supervise(_child('import sys; sys.exit(3)'), workdir=None,
                         process_id=0, num_processes=2) == 3
