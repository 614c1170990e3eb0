"""kill -9 on a gs:// workdir, against the local GCS emulator (manual check).

Usage (from the repository root, with the test extra installed)::

  python experiments/reliability/chaos_gcs.py
  python experiments/reliability/chaos_gcs.py --processes=2

Starts fake-gcs-server (tests/gcs_emulator.py), runs a tiny pretraining to
``gs://bkt/ref`` uninterrupted, then the same command on ``gs://bkt/killed``,
SIGKILLing the launch as soon as ``checkpoints/3``, ``/6`` and ``/9`` appear in
the bucket (on object storage orbax writes a step in place, so that is
mid-save), relaunching after each kill, and compares the final params
bitwise. docs/reliability.md has its result. The full harness with random
kill points (experiments/reliability/chaos.py) works on local workdirs.

With ``--processes=N`` every launch is N processes of one run (the state
sharded over all 8 devices, as ``chaos.py --processes`` does), each kill takes
all of them, and before the last launch the newest committed step is broken
so that only the last process can tell (its array objects cut to 7 bytes):
the last launch must resume from the step before it, with ``checkpoints.broken/``
holding that step once.
"""
import argparse
import os
import sys
import time

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)  # tests/gcs_emulator.py, run as a script.

from bert_jax import checkpoint_steps  # noqa: E402
from bert_jax import pretrained  # noqa: E402
from bert_jax import storage  # noqa: E402
from experiments.reliability import chaos_launch  # noqa: E402
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


def _break_newest(workdir: str, processes: int) -> int:
  """Cuts the last process's array objects of the newest committed step."""
  root = f'{workdir}/checkpoints'
  step = checkpoint_steps.newest_good_step(root)
  data = f'{root}/{step}/state/ocdbt.process_{processes - 1}/d'
  for name in storage.listdir(data):
    with storage.open_file(f'{data}/{name}', 'wb') as f:
      f.write(b'cut\n\x00\x00\x00')
  return step


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--processes', type=int, default=1)
  p.add_argument('--logs', default='/tmp/chaos_gcs', help='Launch logs.')
  a = p.parse_args(argv)
  args = ARGS + ([f'--config.mesh.fsdp={chaos_launch.DEVICES}']
                 if a.processes > 1 else [])
  os.makedirs(a.logs, exist_ok=True)
  log = lambda name: os.path.join(a.logs, name)
  with gcs_emulator.running('bkt') as url, gcs_emulator.environment(url):
    env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONUNBUFFERED='1')
    t0 = time.time()
    ref = chaos_launch.run_to_end(args + ['--workdir=gs://bkt/ref'], env,
                                  log('ref.log'), 900, processes=a.processes)
    print(f'reference done in {ref.wall_s:.0f} s', flush=True)
    kills = 0
    for i, target in enumerate(KILL_AT):
      launch = chaos_launch.Launch(args + ['--workdir=gs://bkt/killed'], env,
                                   log(f'killed_{i}.log'), a.processes)
      while launch.poll() is None and not storage.exists(
          f'gs://bkt/killed/{target}'):
        time.sleep(0.2)
      if launch.poll() is None:  # The step's folder appeared: it is being written.
        launch.kill()
        kills += 1
        print(f'killed as {target} appeared', flush=True)
      else:
        launch.wait(30)
        print(f'the launch ended by itself (exit {launch.poll()}):\n'
              f'{launch.tail(150)}', flush=True)
    broke = (_break_newest('gs://bkt/killed', a.processes)
             if a.processes > 1 else None)
    last = chaos_launch.run_to_end(args + ['--workdir=gs://bkt/killed'], env,
                                   log('final.log'), 900, check=False,
                                   processes=a.processes)
    moved = (storage.listdir('gs://bkt/killed/checkpoints.broken')
             if broke else [])
    a_ = jax.tree.leaves(pretrained.load_params('gs://bkt/ref'))
    b_ = jax.tree.leaves(pretrained.load_params('gs://bkt/killed'))
    equal = len(a_) == len(b_) and all(np.array_equal(x, y) for x, y in zip(a_, b_))
    fell_back = broke is None or (moved == [str(broke)]
                                  and 0 < last.resumed_from < broke)
    print(f'{a.processes} process(es): kills landed {kills}/{len(KILL_AT)}; '
          + (f'broke step {broke}, moved aside: {moved}; ' if broke else '')
          + f'last launch exit {last.rc}, resumed from step {last.resumed_from}; '
          f'final params bitwise equal: {equal} ({len(a_)} leaves); '
          f'{time.time() - t0:.0f} s in all')
    return 0 if equal and last.rc == 0 and fell_back else 1


if __name__ == '__main__':
  sys.exit(main())
