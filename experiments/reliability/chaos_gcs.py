"""kill -9 on a gs:// workdir, against the local GCS emulator (manual check).

Usage (from the repository root, with the test extra installed)::

  python experiments/reliability/chaos_gcs.py

Starts fake-gcs-server (tests/gcs_emulator.py), runs a tiny pretraining to
``gs://bkt/ref`` uninterrupted, then the same command on ``gs://bkt/killed``,
SIGKILLing the launch as soon as ``checkpoints/3``, ``/6`` and ``/9`` appear in
the bucket (on object storage orbax writes a step in place, so that is
mid-save), relaunching after each kill, and compares the final params
bitwise. docs/reliability.md has its result. The full harness with random
kill points (experiments/reliability/chaos.py) works on local workdirs.
"""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # tests/gcs_emulator.py, run as a script.

from bert_jax import pretrained  # noqa: E402
from bert_jax import storage  # noqa: E402
from tests import gcs_emulator  # noqa: E402

ARGS = ['--config=configs/pretrain.py:size=tiny,runlocal', '--config.model.hidden_size=64',
        '--config.model.num_heads=2', '--config.model.intermediate_size=128',
        '--config.data.max_seq_length=32', '--config.data.max_predictions_per_seq=5',
        '--config.data.dupe_factor=1', '--config.data.tokenizer_vocab_size=500',
        '--config.train.global_batch_size=16', '--config.train.num_steps=12',
        '--config.train.log_every_steps=2', '--config.train.eval_every_steps=6',
        '--config.train.eval_batches=1', '--config.ckpt.every_steps=3',
        '--config.ckpt.async_save=False', '--config.optim.warmup_steps=1',
        '--config.data.corpus=builtin', '--config.data.max_documents=80',
        '--config.data.eval_fraction=0.1']
KILL_AT = ('checkpoints/3', 'checkpoints/6', 'checkpoints/9')


def _launch(workdir: str, env: dict[str, str]) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, 'launch.py', f'--workdir={workdir}'] + ARGS,
                          cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, start_new_session=True)


def main() -> int:
  with gcs_emulator.running('bkt') as url, gcs_emulator.environment(url):
    env = dict(os.environ, JAX_PLATFORMS='cpu')
    t0 = time.time()
    ref = _launch('gs://bkt/ref', env)
    ref.communicate()
    if ref.returncode:
      raise SystemExit(f'the reference run failed (exit {ref.returncode})')
    print(f'reference done in {time.time() - t0:.0f} s', flush=True)
    kills = 0
    for target in KILL_AT:
      p = _launch('gs://bkt/killed', env)
      while p.poll() is None and not storage.exists(f'gs://bkt/killed/{target}'):
        time.sleep(0.2)
      if p.poll() is None:  # The step's folder appeared: it is being written.
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        kills += 1
        print(f'killed as {target} appeared', flush=True)
      else:
        tail = p.communicate()[0].decode(errors='replace').strip().splitlines()[-150:]
        print(f"the launch ended by itself (exit {p.returncode}):\n" + "\n".join(tail), flush=True)
    last = _launch('gs://bkt/killed', env)
    out = last.communicate()[0].decode(errors='replace')
    resumed = [l for l in out.splitlines() if l.startswith('Resumed')]
    a = jax.tree.leaves(pretrained.load_params('gs://bkt/ref'))
    b = jax.tree.leaves(pretrained.load_params('gs://bkt/killed'))
    equal = len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    print(f'kills landed {kills}/{len(KILL_AT)}; last launch exit {last.returncode} '
          f'{resumed}; final params bitwise equal: {equal} ({len(a)} leaves); '
          f'{time.time() - t0:.0f} s in all')
    return 0 if equal and last.returncode == 0 else 1


if __name__ == '__main__':
  sys.exit(main())
