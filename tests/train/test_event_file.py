"""TensorBoard event files without torch: framing, contents, purge, no import."""

import glob
import os
import struct
import subprocess
import sys

import pytest

from bert_jax.train import event_file
from bert_jax.train import metrics_writer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _payloads(path):
  """Every record's payload, each frame's two CRCs checked."""
  with open(path, 'rb') as f:
    data = f.read()
  out, pos = [], 0
  while pos < len(data):
    header = data[pos:pos + 8]
    (n,) = struct.unpack('<Q', header)
    (crc_h,) = struct.unpack('<I', data[pos + 8:pos + 12])
    payload = data[pos + 12:pos + 12 + n]
    (crc_p,) = struct.unpack('<I', data[pos + 12 + n:pos + 16 + n])
    assert crc_h == event_file._masked_crc(header)
    assert crc_p == event_file._masked_crc(payload)
    out.append(payload)
    pos += 16 + n
  return out


def test_crc32c_matches_the_standard_check_value():
  assert event_file.crc32c(b'123456789', use_native=False) == 0xE3069283
  blob = bytes(range(256)) * 3
  assert (event_file.crc32c(blob, use_native=False) ==
          event_file.crc32c(blob))


def _read_scalars(logdir):
  """{tag: [(step, value)]} as TensorBoard (or tensorboardX's protos) reads it."""
  try:
    from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  except ImportError:
    event_accumulator = None
  if event_accumulator is not None:
    acc = event_accumulator.EventAccumulator(logdir)
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)]
            for t in acc.Tags()['scalars']}
  pb = pytest.importorskip('tensorboardX.proto.event_pb2')
  out = {}
  purge = None
  for path in sorted(glob.glob(os.path.join(logdir, 'events.out.tfevents.*'))):
    for payload in _payloads(path):
      ev = pb.Event.FromString(payload)
      if ev.HasField('session_log') and ev.session_log.status == 1:
        purge = ev.step
        out = {t: [(s, v) for s, v in xs if s < purge] for t, xs in out.items()}
      for v in ev.summary.value:
        out.setdefault(v.tag, []).append((ev.step, v.simple_value))
  return out


def test_metrics_writer_files_read_back_with_purge_on_resume(tmp_path):
  w = metrics_writer.MetricsWriter(str(tmp_path), enabled=True)
  for step in (1, 2, 3):
    w.write(step, 'train', {'loss': 1.0 / step, 'note': 'x', 'nan': float('nan')})
  w.close()
  for path in glob.glob(str(tmp_path / 'tb' / 'events.out.tfevents.*')):
    assert _payloads(path)  # Framing and CRCs hold.
  assert _read_scalars(str(tmp_path / 'tb')) == {
      'train/loss': [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]}
  # A resumed run from step 1 drops the later steps, as TensorBoard shows it.
  w = metrics_writer.MetricsWriter(str(tmp_path), enabled=True)
  w.rewind(1)
  w.write(2, 'train', {'loss': 0.25})
  w.close()
  assert _read_scalars(str(tmp_path / 'tb'))['train/loss'] == [(1, 1.0), (2, 0.25)]


def test_a_training_run_does_not_import_torch(tmp_path):
  from tests.train import test_pretrain_run  # pylint: disable=g-import-not-at-top
  args = ['launch.py', '--config=configs/pretrain.py:size=tiny,runlocal',
          f'--workdir={tmp_path}', *test_pretrain_run.TINY,
          '--config.train.num_steps=2', '--config.train.eval_every_steps=2',
          f'--config.data.corpus={os.path.abspath(test_pretrain_run.helpers.FIXTURE)}',
          '--config.data.eval_fraction=0.2']
  code = ('import atexit, runpy, sys\n'
          'atexit.register(lambda: print("TORCH", "torch" in sys.modules))\n'
          f'sys.argv = {args!r}\n'
          'runpy.run_path("launch.py", run_name="__main__")\n')
  r = subprocess.run([sys.executable, '-c', code], capture_output=True,
                     text=True, timeout=300, cwd=ROOT)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'TORCH False' in r.stdout, r.stdout[-2000:]
  assert 'train/loss' in _read_scalars(str(tmp_path / 'tb'))
