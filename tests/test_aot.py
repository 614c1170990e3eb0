"""experiments/scaling/aot.py: the trainer's step compiled ahead of time for a slice.

The fake-device path (CPU devices standing in for the chips) always runs;
the XLA:TPU path runs where the libtpu wheel is installed
(``pip install -e '.[tpu]'``), and is skipped, saying so, elsewhere.
"""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from bert_jax.configs import finetune
from bert_jax.configs import pretrain
from experiments.scaling import aot
from experiments.scaling import aot_report
from experiments.scaling import aot_topology
from tests import xla_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_libtpu = pytest.mark.skipif(
    not aot_topology.libtpu_available(),
    reason="libtpu is not installed (pip install -e '.[tpu]')")


def _tiny_pretrain(batch=8, seq=32):
  c = pretrain.get_config('size=tiny')
  c.data.max_seq_length = seq
  c.data.max_predictions_per_seq = 5
  c.train.global_batch_size = batch
  return c


@pytest.mark.parametrize('name,gen,shape', [
    ('v4-8', 'v4', (2, 2, 1)), ('v5p-128', 'v5p', (4, 4, 4)),
    ('v5e-16', 'v5e', (4, 4)), ('v5litepod-256', 'v5e', (16, 16)),
    ('v6e-4', 'v6e', (2, 2)), ('v5e:2x4', 'v5e', (2, 4)),
    ('v5:4x4x8', 'v5p', (4, 4, 8))])
def test_slice_names(name, gen, shape):
  chip, got = aot_topology.parse(name)
  assert (chip.generation, got) == (gen, shape)


@pytest.mark.parametrize('name,match', [
    ('v5p-127', 'TensorCores'), ('v7x-8', 'unknown TPU generation'),
    ('v5e-12', 'no standard v5e slice'), ('tpu', 'not a Cloud TPU slice'),
    ('v5e:4x4x4', '2-D')])
def test_bad_slice_names_say_what_is_valid(name, match):
  with pytest.raises(ValueError, match=match):
    aot_topology.parse(name)


def test_fake_target_has_one_cpu_device_per_chip():
  t = aot_topology.target('v5e-4', num_slices=2, fake=True)
  assert t.fake and t.num_chips == 8 and t.num_hosts == 2
  assert t.devices[0].platform == 'cpu'
  assert 'fake CPU devices' in t.describe()


_HLO = """\
HloModule m, entry_computation_layout={(f32[8]{0})->f32[8]{0}}

%cond (p: (s32[], f32[8])) -> pred[] {
  %p = (s32[], f32[8]{0}) parameter(0)
  %i = s32[] get-tuple-element(%p), index=0
  %n = s32[]{:T(128)} constant(24)
  ROOT %lt = pred[] compare(%i, %n), direction=LT
}

%body (p.1: (s32[], f32[8])) -> (s32[], f32[8]) {
  %p.1 = (s32[], f32[8]{0}) parameter(0)
  %x = f32[8]{0} get-tuple-element(%p.1), index=1
  %ag = bf16[4,128]{1,0:T(8,128)(2,1)} all-gather(%x), dimensions={0}
  %ar = (f32[8]{0:T(128)}, f32[2]{0}) all-reduce(%x, %x), to_apply=%add
  ROOT %t = (s32[], f32[8]{0}) tuple(%i, %x)
}

ENTRY %main (a: f32[8]) -> f32[8] {
  %a = f32[8]{0} parameter(0)
  %cp = (f32[8]{0}, f32[8]{0}, u32[]) collective-permute-start(%a), source_target_pairs={{0,1}}
  %cpd = f32[8]{0} collective-permute-done(%cp)
  %w = (s32[], f32[8]{0}) while(%t0), condition=%cond, body=%body
  ROOT %r = f32[8]{0} all-reduce(%cpd), to_apply=%add
}
"""


def test_collectives_count_loop_iterations_and_result_bytes():
  got = aot_report.collectives(_HLO)
  assert got == {
      'all-gather': {'count': 24, 'bytes': 24 * 4 * 128 * 2},
      'all-reduce': {'count': 25, 'bytes': 24 * (8 + 2) * 4 + 8 * 4},
      'collective-permute': {'count': 1, 'bytes': 32}}


def test_dcn_axes_are_those_whose_devices_change_slice():
  dev = lambda s: types.SimpleNamespace(slice_index=s)
  devices = np.array([dev(i // 4) for i in range(8)]).reshape(2, 2, 2)
  mesh = types.SimpleNamespace(devices=devices,
                               axis_names=('data', 'fsdp', 'tensor'))
  assert aot_report.dcn_axes(mesh) == ['data']
  mesh.devices = devices.transpose(1, 0, 2)
  assert aot_report.dcn_axes(mesh) == ['fsdp']


@pytest.mark.parametrize('task', ['sst2', 'stsb', 'local_classification',
                                  'conll2003', 'local_ner', 'squad_v2'])
def test_every_finetune_task_builds_without_data(task):
  c = finetune.get_config(f'task={task},runlocal')
  c = aot._resolve(c, 1000)
  mc = aot.setup_lib.resolve_model_config(c, 1000)
  t = aot.abstract_task(c, mc, num_labels=3)
  batch = t.dummy_batch(2)
  assert all(v.shape[0] == 2 for v in batch.values())


def test_fake_devices_compile_pretraining():
  target = aot_topology.target('v4-8', fake=True)  # 4 of the 8 CPU devices.
  c = _tiny_pretrain()
  c.mesh.fsdp = 2
  r = aot_report.report(aot.compile_train_step(c, target, vocab_size=1000),
                        target, target.chip.hbm_bytes,
                        target.chip.peak_bf16_flops, (0.4, 0.5))
  assert r['fake_devices'] and r['mesh'] == {'data': 2, 'fsdp': 2, 'tensor': 1}
  assert r['model']['dtype'] == 'bfloat16'  # 'auto' = the accelerator's.
  assert r['fits'] and r['memory']['total'] > 0
  assert 'all-reduce' in r['collectives'] or 'all-gather' in r['collectives']
  assert [e['mfu'] for e in r['estimates']] == [0.4, 0.5]
  assert r['estimates'][0]['step_s'] > r['estimates'][1]['step_s'] > 0
  assert 'fake CPU devices' in aot_report.format_report(r)



def test_config_the_trainer_would_reject_fails_loudly():
  c = _tiny_pretrain(batch=6)  # 4 chips on data: 6 does not divide.
  with pytest.raises(ValueError, match='global_batch_size=6'):
    aot.run(c, 'v4-8', fake=True, vocab_size=1000)
  # A v5e-16 has 4 hosts, each loading a quarter of every batch; 8 CPU
  # devices (all the tests have) stand in for its chips.
  target = aot_topology.Target('v5e-16', aot_topology.CHIPS['v5e'], (4, 4), 1,
                               aot_topology.fake_cpu_devices(8), True)
  c = _tiny_pretrain(batch=6)
  c.mesh.data, c.mesh.tensor = 1, 8
  with pytest.raises(ValueError, match='4 hosts'):
    aot.compile_train_step(c, target, vocab_size=1000)


def test_command_line_on_fake_devices(tmp_path):
  out = tmp_path / 'aot.json'
  env = dict(os.environ, JAX_PLATFORMS='cpu',
             XLA_FLAGS=xla_env.flags(2))
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.scaling.aot',
       '--config=configs/finetune.py:task=sst2,runlocal', '--topology=v5e:1x2',
       '--fake', '--config.train.global_batch_size=8', '--vocab_size=1000',
       '--config.data.max_seq_length=32', '--config.mesh.data=1',
       '--config.mesh.tensor=2',
       f'--json={out}'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
      check=False)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert 'Memory per chip' in proc.stdout and 'tokens/s' in proc.stdout
  report = json.loads(out.read_text())
  assert report['fits'] and report['task'] == 'sst2'
  assert report['mesh'] == {'data': 1, 'fsdp': 1, 'tensor': 2}
  assert report['command'].startswith('python -m experiments.scaling.aot')


@needs_libtpu
def test_tiny_config_compiles_for_a_tpu_slice():
  c = _tiny_pretrain()
  c.mesh.data, c.mesh.fsdp = 2, 2
  r = aot.run(c, 'v5e:2x2', fake=False, vocab_size=1000)
  assert not r['fake_devices'] and r['device_kind'] == 'TPU v5 lite'
  assert r['fits'] and 0 < r['memory']['total'] < r['memory']['hbm']
  assert r['xla_flops_per_chip'] > 0
  # Data parallelism: gradients are summed over data x fsdp.
  assert r['collectives']['all-reduce']['count'] > 0
  assert 'NOTE' not in aot_report.format_report(r)


def test_compile_scale_rows_and_memory_account():
  from experiments.scaling import compile_scale
  rows = compile_scale.plan(['tiny'], [False, True], ['none', 'full'], ['tiny'])
  assert rows == [('tiny', False, 'none'), ('tiny', True, 'none'),
                  ('tiny', False, 'full'), ('tiny', True, 'full')]
  with pytest.raises(ValueError, match='tiny'):
    compile_scale.plan(['huge'], [False], ['none'], [])
  r = compile_scale.compile_row('tiny', True, 'full', batch=8, seq_len=32,
                                vocab_size=1000)
  m = r['memory_mib']
  assert r['layers'] == 2 and r['dtype'] == 'float32' and r['compile_s'] > 0
  # Arguments: params + two Adam moments (fp32) + the batch, at least.
  assert r['params'] > 1e5
  assert m['argument'] >= 3 * r['params'] * 4 / 2**20 * 0.99
  assert m['temp'] > 0 and m['total'] >= m['argument']
  assert '| tiny (2 layers) | scan | full |' in compile_scale.format_row(r)
