"""Hybrid (multislice) meshes: data across slices, fsdp and tensor within one
(bert_jax/train/sharding.py), on fake device lists as mesh_utils sees them."""

import dataclasses

import ml_collections
import numpy as np
import pytest

from bert_jax.train import sharding


@dataclasses.dataclass(frozen=True)
class FakeDevice:
  id: int
  slice_index: int
  process_index: int
  coords: tuple[int, int, int]
  core_on_chip: int = 0
  platform: str = 'tpu'
  device_kind: str = 'TPU v5 lite'


def v5e_slices(num_slices, side=4):
  """NUM_SLICES v5e slices of SIDE x SIDE chips, 4 chips per host."""
  devices = []
  for s in range(num_slices):
    for y in range(side):
      for x in range(side):
        i = len(devices)
        devices.append(FakeDevice(id=i, slice_index=s,
                                  process_index=i // 4, coords=(x, y, 0)))
  return devices


def _config(data=-1, fsdp=1, tensor=1, num_slices=-1):
  return ml_collections.ConfigDict(dict(data=data, fsdp=fsdp, tensor=tensor,
                                        num_slices=num_slices))


def _slice_of(mesh):
  return np.vectorize(lambda d: d.slice_index)(mesh.devices)


@pytest.mark.parametrize('fsdp,tensor', [(1, 1), (4, 1), (2, 2), (1, 4), (16, 1)])
def test_data_spans_slices_fsdp_and_tensor_stay_within(fsdp, tensor):
  mesh = sharding.make_mesh(_config(fsdp=fsdp, tensor=tensor), v5e_slices(2))
  assert mesh.shape == {'data': 32 // fsdp // tensor, 'fsdp': fsdp, 'tensor': tensor}
  slices = _slice_of(mesh)
  # Only the data axis changes slice; its first half is slice 0.
  assert (np.diff(slices, axis=1) == 0).all() and (np.diff(slices, axis=2) == 0).all()
  half = mesh.shape['data'] // 2
  assert (slices[:half] == 0).all() and (slices[half:] == 1).all()
  assert sorted(d.id for d in mesh.devices.flat) == list(range(32))


def test_explicit_num_slices_must_match_the_devices():
  assert sharding.make_mesh(_config(num_slices=2), v5e_slices(2)).shape['data'] == 32
  with pytest.raises(ValueError, match=r'mesh.num_slices=4.*2 slice\(s\)'):
    sharding.make_mesh(_config(num_slices=4), v5e_slices(2))


def test_fsdp_x_tensor_must_fit_in_a_slice():
  # data=1 cannot span 2 slices (fsdp=32 would cross the DCN).
  with pytest.raises(ValueError, match='mesh.data must be a multiple of 2'):
    sharding.make_mesh(_config(fsdp=32), v5e_slices(2))


def test_unequal_slices_are_refused():
  devices = v5e_slices(2)[:-4]
  with pytest.raises(ValueError, match='different device counts'):
    sharding.make_mesh(_config(data=7, fsdp=4), devices)


def test_processes_stand_for_slices_when_asked():
  # GPU hosts: no slice_index, one process per host of 4 devices.
  devices = [FakeDevice(id=i, slice_index=0, process_index=i // 4, coords=(0, 0, 0),
                        platform='gpu', device_kind='NVIDIA H100')
             for i in range(8)]
  mesh = sharding.make_mesh(_config(fsdp=4, num_slices=2), devices)
  procs = np.vectorize(lambda d: d.process_index)(mesh.devices)
  assert mesh.shape == {'data': 2, 'fsdp': 4, 'tensor': 1}
  assert (procs[0] == 0).all() and (procs[1] == 1).all()


def test_one_slice_keeps_the_plain_mesh():
  mesh = sharding.make_mesh(_config(fsdp=2), v5e_slices(1))
  assert mesh.shape == {'data': 8, 'fsdp': 2, 'tensor': 1}
