"""Device mesh, logical axis rules, and the shardings of state and batches.

The models name logical axes only; this module maps them onto a mesh with
axes ``(data, fsdp, tensor)``. Rules are priority-ordered (flax resolves a
logical name with the first rule whose mesh axes are still free in that
array), so ``batch`` taking ``(data, fsdp)`` first keeps activations from
also sharding ``embed`` over ``fsdp`` while parameters (which have no batch
dimension) do get FSDP on ``embed``.
"""

from __future__ import annotations

import collections
from typing import Any, Sequence

from absl import logging
import flax.linen as nn
import jax
from jax.experimental import mesh_utils
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ('data', 'fsdp', 'tensor')

DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ('batch', ('data', 'fsdp')),
    ('vocab', 'tensor'),
    ('heads', 'tensor'),
    ('mlp', 'tensor'),
    ('embed_out', 'tensor'),
    ('embed', 'fsdp'),
    ('kv', None),
    ('length', None),
    ('layers', None),
    ('embed_in', None),
)


def mesh_shape(mesh_config: Any, num_devices: int) -> tuple[int, int, int]:
  """Resolves (data, fsdp, tensor) sizes; one may be -1 (= the rest)."""
  sizes = [int(mesh_config[a]) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f'At most one of mesh.{MESH_AXES} may be -1, got {sizes}.')
  known = int(np.prod([s for s in sizes if s != -1]))
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f'mesh sizes must be positive or -1, got {dict(zip(MESH_AXES, sizes))}.')
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(
          f'mesh {dict(zip(MESH_AXES, sizes))} does not divide the '
          f'{num_devices} devices.')
    sizes[sizes.index(-1)] = num_devices // known
  if int(np.prod(sizes)) != num_devices:
    raise ValueError(
        f'mesh {dict(zip(MESH_AXES, sizes))} has {int(np.prod(sizes))} '
        f'devices but {num_devices} are available.')
  return tuple(sizes)


def make_mesh(mesh_config: Any, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A Mesh with Auto axes (Flax logical constraints need Auto, not Explicit).

  Devices on several slices (TPU multislice: ``slice_index``), or on several
  processes when ``mesh.num_slices`` equals the process count (GPU hosts),
  get a hybrid mesh: ``data`` spans the slices over the data-centre network
  (DCN), ``fsdp`` and ``tensor`` stay within a slice (ICI / NVLink).
  """
  devices = list(devices if devices is not None else jax.devices())
  shape = mesh_shape(mesh_config, len(devices))
  slices, by_process = num_slices(mesh_config, devices)
  if slices > 1:
    return Mesh(_hybrid_device_array(shape, slices, devices, by_process), MESH_AXES)
  try:
    device_array = mesh_utils.create_device_mesh(shape, devices=devices)
  except Exception:  # Fake CPU devices or odd topologies: plain reshape.
    device_array = np.asarray(devices).reshape(shape)
  return Mesh(device_array, MESH_AXES)


def num_slices(mesh_config: Any, devices: Sequence[Any]) -> tuple[int, bool]:
  """(slices, whether processes stand for slices) for ``mesh.num_slices``.

  -1 (the default) = as many as the devices' distinct ``slice_index``; an
  explicit N must match them, or the number of processes (for devices
  without slice indices, e.g. GPU hosts joined by Ethernet/InfiniBand).
  """
  get = getattr(mesh_config, 'get', None)
  wanted = int(get('num_slices', -1)) if get else -1
  found = len({getattr(d, 'slice_index', 0) for d in devices})
  if wanted == -1 or wanted == found:
    return found, False
  if wanted < 1:
    raise ValueError(f'mesh.num_slices={wanted} must be -1 (= the slices the '
                     'devices are on) or a positive number of slices.')
  processes = len({getattr(d, 'process_index', 0) for d in devices})
  if found == 1 and wanted == processes:
    return wanted, True
  raise ValueError(
      f'mesh.num_slices={wanted}, but the {len(devices)} devices are on '
      f'{found} slice(s) (slice_index) and {processes} process(es): set '
      f'mesh.num_slices to {found} (or -1).')


def _hybrid_device_array(shape: tuple[int, int, int], slices: int,
                         devices: Sequence[Any], by_process: bool) -> np.ndarray:
  data, fsdp, tensor = shape
  unit = 'process' if by_process else 'slice'
  key = 'process_index' if by_process else 'slice_index'
  counts = collections.Counter(getattr(d, key, 0) for d in devices)
  if len(set(counts.values())) > 1:
    raise ValueError(f'The {unit}s have different device counts '
                     f'{dict(sorted(counts.items()))}: a hybrid mesh needs '
                     'equal slices.')
  if data % slices:
    raise ValueError(
        f'mesh (data={data}, fsdp={fsdp}, tensor={tensor}) on {slices} '
        f'{unit}s: mesh.data must be a multiple of {slices}, since data '
        'parallelism is the axis across slices and fsdp x tensor must fit '
        f'within one slice of {len(devices) // slices} devices.')
  ici = (data // slices, fsdp, tensor)
  try:
    return mesh_utils.create_hybrid_device_mesh(
        ici, (slices, 1, 1), devices, process_is_granule=by_process,
        allow_split_physical_axes=True)
  except (ValueError, NotImplementedError, AssertionError) as e:
    raise ValueError(
        f'Cannot lay mesh (data={data}, fsdp={fsdp}, tensor={tensor}) over '
        f'{slices} {unit}s of {len(devices) // slices} devices (data '
        f'{data // slices} x fsdp {fsdp} x tensor {tensor} within each): {e}') from e


def rules_from_config(rules: Any | None) -> tuple[tuple[str, Any], ...]:
  if not rules:
    return DEFAULT_RULES
  out = []
  for name, axes in rules:
    out.append((name, tuple(axes) if isinstance(axes, list) else axes))
  return tuple(out)


def _fit(spec: PartitionSpec, shape: tuple[int, ...], mesh: Mesh,
         dropped: set[tuple[int, Any]]) -> PartitionSpec:
  """Drops mesh axes from dims they don't divide (e.g. 2 heads on tensor=8):
  such a dim is replicated instead of failing to shard. Each drop is added to
  DROPPED as (dim size, mesh axes)."""
  out = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    names = (axes,) if isinstance(axes, str) else tuple(axes or ())
    size = int(np.prod([mesh.shape[a] for a in names])) if names else 1
    keep = names and dim % size == 0
    if names and not keep and size > 1:
      dropped.add((dim, axes))
    out.append(axes if keep else None)
  return PartitionSpec(*out)


def logical_shardings(mesh: Mesh, boxed_tree: Any, rules) -> Any:
  """NamedShardings for a tree of (possibly) LogicallyPartitioned leaves."""
  specs = nn.get_partition_spec(boxed_tree)
  mesh_specs = nn.logical_to_mesh(specs, rules)
  is_box = lambda x: isinstance(x, nn.Partitioned)
  shapes = jax.tree.map(lambda x: tuple(x.value.shape if is_box(x) else x.shape),
                        boxed_tree, is_leaf=is_box)
  dropped: set[tuple[int, Any]] = set()
  out = jax.tree.map(
      lambda s, shape: NamedSharding(mesh, _fit(s, shape, mesh, dropped)),
      mesh_specs, shapes, is_leaf=lambda x: isinstance(x, PartitionSpec))
  for dim, axes in sorted(dropped, key=str):
    logging.info('Sharding: a dimension of size %d is not divisible by mesh '
                 'axes %s (%s): it is replicated over them instead.', dim,
                 axes, {a: mesh.shape[a] for a in ((axes,) if isinstance(
                     axes, str) else axes)})
  return out


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batch-major arrays are split over data and fsdp."""
  return NamedSharding(mesh, PartitionSpec(('data', 'fsdp')))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Process-local host batch -> global jax.Arrays sharded over the batch axes."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}


def data_parallel_size(mesh: Mesh) -> int:
  return mesh.shape['data'] * mesh.shape['fsdp']
