r"""One GPU check, at most 8 minutes, one JSON: what a lent GPU machine is for.

  python -m experiments.scaling.device_check --out=device_check.json
  python -m experiments.scaling.device_check --dry_run --out=/tmp/dc.json  # CPU

Steps, each under its own time limit (the sum stays under 8 minutes):

1. ``pip install -e '.[cuda12,test]'`` into this Python (skipped with
   ``--no_install`` or ``--dry_run``), then a check that JAX sees a GPU.
2. The device-dependent tests (``DEVICE_TESTS``) with ``BERT_JAX_TEST_DEVICE=1``,
   which lets them use the accelerator instead of tests/conftest.py's 8 fake
   CPU devices (on a CPU they skip).
3. ``experiments/benchmarks/benchmark_step.py`` at BERT-base, batch 32, L=128,
   bf16, ``--attention_impl=cudnn``, with MFU against the GPU's peak dense
   bf16 TFLOP/s (``PEAK_TFLOPS`` by device name), and the Hugging Face
   PyTorch peer on the GPU (``--torch_device=cuda``) at the same shapes.

``--dry_run`` runs the same steps on the CPU at toy sizes (tiny model, batch 8,
L=32, XLA attention, torch on the CPU), so the script itself is tested in CI
(tests/test_device_check.py). Every step's status, time and output tail go to
the JSON, also when a step fails, so a partial run still says what it saw.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE_TESTS = ('tests/models/test_attention_device.py',)
# Peak dense bf16 TFLOP/s per GPU (vendor figures, without sparsity).
PEAK_TFLOPS = {'H200': 989.0, 'H100': 989.0, 'A100': 312.0, 'L4': 121.0,
               'A10G': 125.0}
LIMITS_S = {'install': 150, 'tests': 90, 'benchmark': 210}  # 7.5 minutes.


def _run(name: str, cmd: list[str], limit_s: float, env: dict[str, str]) -> dict:
  t0 = time.perf_counter()
  print(f'[device_check] {name}: {" ".join(cmd)}', file=sys.stderr, flush=True)
  try:
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=limit_s)
    rc, out = proc.returncode, proc.stdout + proc.stderr
  except subprocess.TimeoutExpired as e:
    rc = 'timeout'
    out = ''.join(x.decode() if isinstance(x, bytes) else (x or '')
                  for x in (e.stdout, e.stderr))
  seconds = round(time.perf_counter() - t0, 1)
  print(f'[device_check] {name}: status {rc} after {seconds} s',
        file=sys.stderr, flush=True)
  return {'cmd': cmd, 'returncode': rc, 'seconds': seconds,
          'output_tail': out[-4000:]}


def _device(env: dict[str, str]) -> dict:
  code = ('import jax, json; d = jax.devices()[0]; print(json.dumps({'
          '"backend": jax.default_backend(), "device_kind": d.device_kind, '
          '"count": jax.device_count(), "jax": jax.__version__}))')
  proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)
  if proc.returncode:
    return {'error': proc.stderr[-2000:]}
  return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_tflops(device_kind: str) -> float:
  for name, peak in PEAK_TFLOPS.items():
    if name.lower() in device_kind.lower():
      return peak
  return 0.0


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--out', default='device_check.json')
  p.add_argument('--dry_run', action='store_true',
                 help='CPU, toy sizes, no install: checks the script itself.')
  p.add_argument('--no_install', action='store_true')
  args = p.parse_args(argv)
  t0 = time.perf_counter()
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      x for x in (REPO, os.environ.get('PYTHONPATH')) if x))
  if args.dry_run:
    env.update(JAX_PLATFORMS='cpu')
  else:
    env.pop('JAX_PLATFORMS', None)
  result: dict = {'dry_run': args.dry_run, 'steps': {}}
  steps = result['steps']
  if not (args.dry_run or args.no_install):
    steps['install'] = _run(
        'install', [sys.executable, '-m', 'pip', 'install', '-q', '-e',
                    '.[cuda12,test]'], LIMITS_S['install'], env)
  result['device'] = device = _device(env)
  on_gpu = device.get('backend') == 'gpu'
  if not on_gpu and not args.dry_run:
    result['error'] = f'JAX does not see a GPU: {device}'
  # Tests: the accelerator instead of conftest's fake CPU devices.
  test_env = dict(env, BERT_JAX_TEST_DEVICE='1', XLA_FLAGS='')
  if not args.dry_run:
    test_env['JAX_PLATFORMS'] = ''
  steps['tests'] = _run('tests', [sys.executable, '-m', 'pytest', '-q', '-n', '0',
                                  '-p', 'no:cacheprovider', *DEVICE_TESTS],
                        LIMITS_S['tests'], test_env)
  with tempfile.TemporaryDirectory() as tmp:
    bench_json = os.path.join(tmp, 'bench.json')
    if args.dry_run:
      shape = ['--size', 'tiny', '--batch', '8', '--seq_len', '32', '--steps', '2',
               '--warmup', '1', '--dtype', 'bfloat16', '--attention_impl', 'xla',
               '--torch_device', 'cpu', '--vocab_size', '2000']
    else:
      shape = ['--size', 'base', '--batch', '32', '--seq_len', '128', '--steps', '20',
               '--dtype', 'bfloat16', '--attention_impl', 'cudnn',
               '--torch_device', 'cuda']
    peak = peak_tflops(device.get('device_kind', '')) if on_gpu else 0.0
    steps['benchmark'] = _run(
        'benchmark', [sys.executable, 'experiments/benchmarks/benchmark_step.py',
                      *shape, '--peak_tflops', str(peak), '--json', bench_json],
        LIMITS_S['benchmark'], dict(env, XLA_FLAGS=''))
    if os.path.exists(bench_json):
      with open(bench_json) as f:
        result['benchmark'] = json.load(f)
  result['seconds'] = round(time.perf_counter() - t0, 1)
  result['ok'] = ('error' not in result and all(
      s['returncode'] == 0 for s in steps.values()) and 'benchmark' in result)
  with open(args.out, 'w') as f:
    json.dump(result, f, indent=1)
  print(f'[device_check] {"ok" if result["ok"] else "FAILED"} in '
        f'{result["seconds"]} s: {args.out}', file=sys.stderr, flush=True)
  return 0 if result['ok'] else 1


if __name__ == '__main__':
  sys.exit(main())
