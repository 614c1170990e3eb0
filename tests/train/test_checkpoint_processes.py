"""Two processes save a train-state checkpoint right after process 0 alone
wrote the fine-tuning best checkpoint (the order of a fine-tuning run that
evaluates, finds a new best, then saves). Orbax counts saves per process and
keys its "directories created" signal by that count: without
``checkpoint._align_operation_ids`` process 1 took process 0's old signal for
the new one and wrote its data-iterator state into a directory not created
yet (the N-process fine-tuning chaos run hung on it, docs/reliability.md).

Run as a script, this file is one of the two processes.
"""

import asyncio
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Tokenizer:
  def save(self, path):
    with open(path, 'w') as f:
      f.write('[PAD]\n')


def _worker(workdir: str, port: int, index: int, align: bool) -> None:
  import grain  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  jax.distributed.initialize(f'localhost:{port}', 2, index)
  from bert_jax.models import config_for_size  # pylint: disable=g-import-not-at-top
  from bert_jax.train import best_writer, checkpoint  # pylint: disable=g-import-not-at-top
  if not align:
    checkpoint._align_operation_ids = lambda: None  # pylint: disable=protected-access
  if index == 0:  # Process 0 creates the temporary directories late.
    from orbax.checkpoint._src.path import atomicity  # pylint: disable=g-import-not-at-top
    create = atomicity._create_paths  # pylint: disable=protected-access

    async def late(*args, **kwargs):
      await asyncio.sleep(2)
      return await create(*args, **kwargs)
    atomicity._create_paths = late  # pylint: disable=protected-access
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'run'), every_steps=1,
                                 keep=2, async_save=True)
  best = best_writer.BestWriter(os.path.join(workdir, 'best'),
                                config_for_size('tiny', vocab_size=8), _Tokenizer())
  best.before_write = ckpt.wait
  data = iter(grain.MapDataset.range(16).to_iter_dataset())
  for step in (1, 2):
    next(data)
    best.save({'w': np.full((2,), float(step), np.float32)}, {'step': step})
    best.wait()  # As the trainer does before a train-state save.
    ckpt.save(step, {'w': np.arange(4.0) + step}, {'step': step}, data)
    ckpt.wait()
  print('saved steps', ckpt.good_steps(), flush=True)
  ckpt.close()


def _run_two(workdir, align: bool, timeout: int = 120):
  # pylint: disable=g-import-not-at-top  (this file also runs as a script)
  from tests import xla_env
  from tests.train.test_multiprocess import _free_port
  env = dict(os.environ, XLA_FLAGS=xla_env.flags(1),
             JAX_PLATFORMS='cpu')
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, __file__, str(workdir), str(port), str(i), str(int(align))],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
      text=True) for i in range(2)]
  outs = []
  for p in procs:
    try:
      outs.append(p.communicate(timeout=timeout)[0])
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      outs.append(p.communicate()[0] + '\n[timed out]')
  return procs, outs


def test_train_state_save_after_a_process_0_only_best_save(tmp_path):
  procs, outs = _run_two(tmp_path, align=True)
  for p, out in zip(procs, outs):
    assert p.returncode == 0, out[-4000:]
    assert 'saved steps [1, 2]' in out, out[-2000:]
  for step in (1, 2):
    data = tmp_path / 'run' / 'checkpoints' / str(step) / 'data'
    assert {'process_0-of-2.json', 'process_1-of-2.json'} <= set(os.listdir(data))


@pytest.mark.skipif(os.environ.get('BERT_JAX_SHOW_ORBAX_RACE') != '1',
                    reason='shows the bug the alignment fixes (set '
                    'BERT_JAX_SHOW_ORBAX_RACE=1)')
def test_without_the_alignment_process_1_writes_too_early(tmp_path):
  # Process 1 fails its write; process 0 then waits for it until killed.
  procs, outs = _run_two(tmp_path, align=False, timeout=60)
  assert any(p.returncode != 0 for p in procs)
  assert ('No such file or directory' in outs[1] and
          'data.orbax-checkpoint-tmp/process_1-of-2.json' in outs[1]), outs[1][-3000:]


if __name__ == '__main__':
  sys.path.insert(0, ROOT)
  _worker(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1')
