"""experiments/scaling/device_check.py --dry_run: the GPU check's steps on the
CPU at toy sizes, so the script is known to run before a GPU is lent."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dry_run_writes_one_json(tmp_path):
  out = tmp_path / 'dc.json'
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.scaling.device_check', '--dry_run',
       f'--out={out}'], cwd=ROOT, capture_output=True, text=True, timeout=420)
  assert proc.returncode == 0, proc.stderr[-4000:]
  r = json.loads(out.read_text())
  assert r['ok'] and r['dry_run'] and r['device']['backend'] == 'cpu'
  assert r['steps']['tests']['returncode'] == 0
  assert 'skipped' in r['steps']['tests']['output_tail']
  bench = r['benchmark']
  assert bench['bert_jax']['dtype'] == 'bfloat16'
  assert bench['settings']['attention_impl'] == 'xla'
  assert 'peer' in bench and 'error' not in bench['peer'], bench.get('peer')
