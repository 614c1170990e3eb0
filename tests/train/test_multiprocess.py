"""Two processes on localhost (jax.distributed, CPU collectives), 4 devices
each, train through launch.py and match one process with 8 devices."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from tests.train.test_pretrain_run import ROOT, TINY
from tests import xla_env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    recs = [json.loads(line) for line in f]
  return {(r['step'], r['split']): r for r in recs}


ARGS = [*TINY, '--config.data.max_documents=80', '--config.data.eval_fraction=0.1',
        '--config.model.hidden_dropout=0.0', '--config.model.attention_dropout=0.0']


def _cmd(workdir, *extra):
  return [sys.executable, 'launch.py',
          '--config=configs/pretrain.py:size=tiny,runlocal',
          f'--workdir={workdir}', *ARGS, *extra]


def test_two_processes_match_one(tmp_path):
  env8 = dict(os.environ, XLA_FLAGS=xla_env.flags(8),
              JAX_PLATFORMS='cpu')
  one = subprocess.run(_cmd(tmp_path / 'one'), cwd=ROOT, env=env8,
                       capture_output=True, text=True, timeout=300)
  assert one.returncode == 0, one.stderr[-3000:]

  env4 = dict(os.environ, XLA_FLAGS=xla_env.flags(4),
              JAX_PLATFORMS='cpu')
  port = _free_port()
  procs = [subprocess.Popen(
      _cmd(tmp_path / 'two', f'--coordinator_address=localhost:{port}',
           '--num_processes=2', f'--process_id={i}'),
      cwd=ROOT, env=env4, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True) for i in range(2)]
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert '2 processes' in outs[0] or 'process 0/2' in outs[0]

  a, b = _losses(tmp_path / 'one'), _losses(tmp_path / 'two')
  assert a.keys() == b.keys()
  for key in a:
    for m in ('loss', 'mlm_loss', 'mlm_accuracy', 'nsp_accuracy'):
      if m not in a[key]:
        continue
      np.testing.assert_allclose(a[key][m], b[key][m], atol=1e-5, err_msg=str(key))


FT_ARGS = ['--config.data.train_file=tests/tasks/fixtures/topics_train.tsv',
           '--config.data.eval_file=tests/tasks/fixtures/topics_eval.tsv',
           '--config.data.max_seq_length=32', '--config.train.global_batch_size=16',
           '--config.train.num_steps=3', '--config.train.eval_every_steps=3',
           '--config.train.log_every_steps=1', '--config.model.hidden_dropout=0.0',
           '--config.model.attention_dropout=0.0']


def _ft_cmd(workdir, init_from, *extra):
  return [sys.executable, 'launch.py',
          '--config=configs/finetune.py:task=local_classification,runlocal',
          f'--workdir={workdir}', f'--config.init_from={init_from}', *FT_ARGS, *extra]


def test_two_processes_finetune_like_one(tmp_path):
  """Fine-tuning: same losses and metrics, and the best checkpoint is saved
  from sharded params gathered over both processes."""
  env8 = dict(os.environ, XLA_FLAGS=xla_env.flags(8),
              JAX_PLATFORMS='cpu')
  pre = subprocess.run(_cmd(tmp_path / 'pre', '--config.train.num_steps=2'),
                       cwd=ROOT, env=env8, capture_output=True, text=True,
                       timeout=300)
  assert pre.returncode == 0, pre.stderr[-3000:]
  one = subprocess.run(_ft_cmd(tmp_path / 'one', tmp_path / 'pre'), cwd=ROOT,
                       env=env8, capture_output=True, text=True, timeout=300)
  assert one.returncode == 0, one.stderr[-3000:]
  env4 = dict(os.environ, XLA_FLAGS=xla_env.flags(4),
              JAX_PLATFORMS='cpu')
  port = _free_port()
  procs = [subprocess.Popen(
      _ft_cmd(tmp_path / 'two', tmp_path / 'pre',
              f'--coordinator_address=localhost:{port}', '--num_processes=2',
              f'--process_id={i}', '--config.mesh.fsdp=2'),
      cwd=ROOT, env=env4, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True) for i in range(2)]
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  a, b = _losses(tmp_path / 'one'), _losses(tmp_path / 'two')
  assert a.keys() == b.keys()
  for key in a:
    for m in ('loss', 'accuracy', 'macro_f1'):
      if m in a[key]:
        np.testing.assert_allclose(a[key][m], b[key][m], atol=1e-5, err_msg=str(key))
  assert os.path.exists(tmp_path / 'two' / 'best' / 'params')
  assert os.path.exists(tmp_path / 'two' / 'predictions' / 'predictions_validation.jsonl')


# Long enough that the run is still training when a process is killed.
KILL_ARGS = [*ARGS, '--config.model.num_layers=1', '--config.train.num_steps=100000',
             '--config.train.log_every_steps=1',
             '--config.train.eval_every_steps=100000', '--config.ckpt.every_steps=2',
             '--config.ckpt.async_save=False', '--heartbeat_timeout_s=5']


def _start_two(workdir):
  env = dict(os.environ, XLA_FLAGS=xla_env.flags(1),
             JAX_PLATFORMS='cpu')
  port = _free_port()
  return [subprocess.Popen(
      [sys.executable, 'launch.py', '--config=configs/pretrain.py:size=tiny,runlocal',
       f'--workdir={workdir}', *KILL_ARGS, f'--coordinator_address=localhost:{port}',
       '--num_processes=2', f'--process_id={i}'],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for i in range(2)]


def test_one_process_lost_the_other_says_so(tmp_path):
  """SIGKILL the coordinator of one run and process 1 of another (both runs
  at once, to share the start-up time): the survivor stops within the
  heartbeat timeout (5 s here) plus a little, and its last line names the
  lost process, says to relaunch both and the step the run resumes from."""
  runs = {victim: _start_two(tmp_path / f'kill{victim}') for victim in (0, 1)}
  deadline = time.time() + 240
  killed_at = {}
  while len(killed_at) < 2 and time.time() < deadline:
    for victim, procs in runs.items():
      ckpts = tmp_path / f'kill{victim}' / 'checkpoints'
      if victim not in killed_at and (ckpts / '2').is_dir() and not any(
          p.poll() is not None for p in procs):
        # The supervisor dies and takes its training child with it, as a
        # lost VM would.
        procs[victim].send_signal(signal.SIGKILL)
        killed_at[victim] = time.time()
    time.sleep(0.2)
  assert len(killed_at) == 2, [p.poll() for ps in runs.values() for p in ps]
  for victim, procs in runs.items():
    survivor = procs[1 - victim]
    out, err = survivor.communicate(timeout=60)
    waited = time.time() - killed_at[victim]
    last = err.strip().splitlines()[-1]
    print(f'kill process {victim}: the survivor exited {survivor.returncode} '
          f'after {waited:.1f} s: {last}')
    assert survivor.returncode == 75, err[-3000:]
    assert waited < 30
    assert last.startswith(f'error: process {1 - victim} stopped because '
                           f'process {victim}'), last
    assert 'Relaunch all 2 processes' in last
    steps = [int(s) for s in os.listdir(tmp_path / f'kill{victim}' / 'checkpoints')
             if s.isdigit()]
    assert f'resumes from step {max(steps)}' in last, (last, steps)


def refused_two_process_run(workdir, holder_pid):
  """Launches 2 processes of a tiny run on WORKDIR, whose lock a live run
  (HOLDER_PID) holds: both must refuse before any setup, with status 2, and
  process 0 names the holder. Also used on gs:// (tests/train/test_gcs.py)."""
  env = dict(os.environ, XLA_FLAGS=xla_env.flags(4),
             JAX_PLATFORMS='cpu')
  port = _free_port()
  procs = [subprocess.Popen(
      _cmd(workdir, f'--coordinator_address=localhost:{port}',
           '--num_processes=2', f'--process_id={i}'),
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for i in range(2)]
  try:
    outs = [p.communicate(timeout=600) for p in procs]
  finally:
    for p in procs:
      p.kill()
  lasts = [err.strip().splitlines()[-1] for _, err in outs]
  assert [p.returncode for p in procs] == [2, 2], outs
  assert f'in use by the run with PID {holder_pid}' in lasts[0], lasts
  assert 'Process 0 could not lock' in lasts[1], lasts
  assert not any('First step' in out for out, _ in outs)


def test_a_live_run_keeps_a_second_two_process_run_out(tmp_path):
  """One run per workdir with several processes: process 0 holds the lock for
  its run (its PID is in run.lock) and every process of a second run refuses.
  The lock left by a whole run SIGKILLed is taken over on relaunch: the
  N-process kill harness (tests/train/test_chaos.py) checks that."""
  from tests.train import test_reliability  # pylint: disable=import-outside-toplevel
  holder = test_reliability._holder(tmp_path)  # pylint: disable=protected-access
  try:
    refused_two_process_run(tmp_path, holder.pid)
  finally:
    holder.kill()
    holder.wait()
  assert sorted(os.listdir(tmp_path)) == ['run.lock']  # Nothing else written.
