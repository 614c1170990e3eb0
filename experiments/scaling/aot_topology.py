"""Target devices for ahead-of-time compilation: TPU slices by name, or fake
CPU devices standing in for them.

A slice name is the one Cloud TPU uses (``v4-8``, ``v5e-16``, ``v5p-128``,
``v6e-256``; ``v5litepod-16`` = ``v5e-16``) or libtpu's own topology string
(``v5e:4x4``, ``v5:4x4x4`` for v5p, ``v4:2x2x2``). v4 and v5p names count
TensorCores (two per chip, fused into one JAX device: "megacore"), v5e and v6e
names count chips; a JAX device is one chip everywhere.

With the ``libtpu`` wheel installed (``pip install -e '.[tpu]'``),
``jax.experimental.topologies`` describes the slice's devices on any host and
XLA:TPU compiles for them. Without it, ``fake_cpu_devices`` gives as many CPU
devices as the slice has chips: the program is then partitioned the same way,
so a sharding that does not divide or a shape error still shows, but memory
and collectives are XLA:CPU's, not the TPU's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
from typing import Any

import jax
from jax.experimental import topologies

GIB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class Chip:
  """Per-chip figures from the Cloud TPU system-architecture pages."""
  generation: str        # 'v4' | 'v5e' | 'v5p' | 'v6e'
  libtpu_name: str       # Prefix of libtpu's topology string.
  hbm_bytes: int
  peak_bf16_flops: float  # Dense bf16 FLOP/s.
  dims: int               # 2-D (v5e, v6e) or 3-D (v4, v5p) torus.
  cores_per_chip: int     # TensorCores a slice name counts per chip.
  megacore: bool          # Both cores fused into one JAX device.


CHIPS: dict[str, Chip] = {
    'v4': Chip('v4', 'v4', 32 * GIB, 275e12, 3, 2, True),
    'v5e': Chip('v5e', 'v5e', 16 * GIB, 197e12, 2, 1, False),
    'v5p': Chip('v5p', 'v5', 95 * GIB, 459e12, 3, 2, True),
    'v6e': Chip('v6e', 'v6e', 32 * GIB, 918e12, 2, 1, False),
}
_ALIASES = {'v5litepod': 'v5e', 'v5': 'v5p', 'v6': 'v6e'}

# Chips -> torus shape of the standard slices (Cloud TPU's accelerator types).
_SHAPES_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4),
              64: (4, 4, 4), 128: (4, 4, 8), 256: (4, 8, 8), 512: (8, 8, 8),
              1024: (8, 8, 16), 2048: (8, 16, 16), 4096: (16, 16, 16)}
_SHAPES_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8),
              64: (8, 8), 128: (8, 16), 256: (16, 16)}


@dataclasses.dataclass(frozen=True)
class Target:
  """What the step is compiled for."""
  name: str                  # As the user gave it.
  chip: Chip
  shape: tuple[int, ...]     # Chips per torus dimension, one slice.
  num_slices: int
  devices: tuple[Any, ...]   # JAX devices: TPU (compile-only) or fake CPU.
  fake: bool                 # True: CPU devices stand in for the chips.

  @property
  def num_chips(self) -> int:
    return len(self.devices)

  @property
  def topology_name(self) -> str:
    return f"{self.chip.libtpu_name}:{'x'.join(map(str, self.shape))}"

  @property
  def num_hosts(self) -> int:
    """Host VMs (processes) of the real slices: 4 chips per host, or 1."""
    per_slice = max(math.prod(self.shape) // 4, 1)
    return per_slice * self.num_slices

  def describe(self) -> str:
    slices = f' x {self.num_slices} slices' if self.num_slices > 1 else ''
    what = (f'{self.num_chips} fake CPU devices standing in for '
            if self.fake else '')
    return (f'{what}{self.name}{slices} ({self.topology_name}, '
            f'{math.prod(self.shape) * self.num_slices} chips of TPU '
            f'{self.chip.generation}, {self.num_hosts} hosts)')


@dataclasses.dataclass(frozen=True)
class LocalTarget:
  """This host's own devices (CPU, GPU or TPU), one process."""
  devices: tuple[Any, ...]
  name: str = 'this host'
  num_hosts: int = 1

  @property
  def num_chips(self) -> int:
    return len(self.devices)


def parse(name: str) -> tuple[Chip, tuple[int, ...]]:
  """(chip, torus shape) of a slice name; a ValueError lists what is valid."""
  valid = ("a Cloud TPU slice name such as v4-8, v5e-16, v5p-128, v6e-256 "
           "(v5litepod-N = v5e-N), or libtpu's topology string such as "
           "v5e:4x4, v5:4x4x4 (v5p), v4:2x2x2")
  m = re.fullmatch(r'(v\d+[a-z]*)[-:](.+)', name.strip().lower())
  if not m:
    raise ValueError(f'--topology={name!r} is not {valid}.')
  gen, rest = m.group(1), m.group(2)
  gen = _ALIASES.get(gen, gen)
  if gen not in CHIPS:
    raise ValueError(f'--topology={name!r}: unknown TPU generation {gen!r}; '
                     f'choose one of {sorted(CHIPS)} ({valid}).')
  chip = CHIPS[gen]
  if 'x' in rest:
    shape = tuple(int(s) for s in rest.split('x'))
    if len(shape) not in (2, 3) or min(shape) < 1:
      raise ValueError(f'--topology={name!r}: bad shape {rest!r} ({valid}).')
    if len(shape) == 3 and chip.dims == 2 and shape[2] == 1:
      shape = shape[:2]
    if len(shape) != chip.dims:
      raise ValueError(f'--topology={name!r}: TPU {gen} slices are '
                       f'{chip.dims}-D tori.')
    return chip, shape
  if not rest.isdigit() or int(rest) % chip.cores_per_chip:
    raise ValueError(f'--topology={name!r}: the count must be a number of '
                     f'{"TensorCores (2 per chip)" if chip.cores_per_chip == 2 else "chips"} ({valid}).')
  chips = int(rest) // chip.cores_per_chip
  table = _SHAPES_3D if chip.dims == 3 else _SHAPES_2D
  if chips not in table:
    raise ValueError(
        f'--topology={name!r}: no standard {gen} slice of {chips} chips '
        f'(known: {sorted(table)} chips); give the shape instead, e.g. '
        f'{chip.libtpu_name}:{"x".join(map(str, table[max(table)]))}.')
  return chip, table[chips]


def libtpu_available() -> bool:
  return importlib.util.find_spec('libtpu') is not None


def _topology_kwargs(chip: Chip, shape: tuple[int, ...]) -> dict[str, Any]:
  kw: dict[str, Any] = {}
  if chip.megacore:
    # v4 defaults to one device per TensorCore; the runtime runs megacore.
    kw['chip_config_name'] = 'megacore'
  if math.prod(shape) < 4:
    kw['chips_per_host_bounds'] = (1, 1, 1)  # Single-chip hosts (v5e-1).
  # Full tori: 3-D slices of 4x4x4 and more wrap every axis; 2-D slices
  # wrap an axis of 16 chips (v5e-256 both, v5e-128 one).
  if chip.dims == 3:
    kw['wrap'] = (all(s % 4 == 0 for s in shape),) * 3
  else:
    kw['wrap'] = tuple(s == 16 for s in shape) + (False,)
  return kw


def tpu_devices(chip: Chip, shape: tuple[int, ...], num_slices: int
                ) -> tuple[Any, ...]:
  """Compile-only TPU devices of NUM_SLICES slices (needs libtpu)."""
  # Compile-only: no chip is opened, so several processes (a table being
  # made, a test) may load libtpu at once; without this the second fails on
  # libtpu's lockfile.
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  name = f"{chip.libtpu_name}:{'x'.join(map(str, shape))}"
  kw = _topology_kwargs(chip, shape)
  if num_slices > 1:
    kw['num_slices'] = num_slices
  return tuple(topologies.get_topology_desc(
      topology_name=name, platform='tpu', **kw).devices)


def _forced_cpu_devices() -> int:
  m = re.search(r'--xla_force_host_platform_device_count=(\d+)',
                os.environ.get('XLA_FLAGS', ''))
  return int(m.group(1)) if m else 1


def fake_cpu_devices(n: int) -> tuple[Any, ...]:
  """The first N CPU devices; asks for N if XLA_FLAGS gives fewer and the CPU
  backend has not started yet (otherwise fails saying how to get them)."""
  if _forced_cpu_devices() < n:
    try:
      jax.config.update('jax_num_cpu_devices', n)
    except RuntimeError:
      pass  # The backend is already up: the check below says what to do.
  devices = jax.devices('cpu')
  if len(devices) < n:
    raise RuntimeError(
        f'{n} fake CPU devices are needed but the CPU backend already has '
        f'{len(devices)}: run in a fresh process, or set XLA_FLAGS='
        f'--xla_force_host_platform_device_count={n} before JAX starts.')
  return tuple(devices[:n])


def target(name: str, num_slices: int = 1, fake: bool | None = None) -> Target:
  """The devices to compile for.

  Args:
    name: A slice name (see the module docstring).
    num_slices: Slices joined over the data-centre network (multislice).
    fake: True: fake CPU devices; False: TPU devices (fails without
      libtpu); None: TPU when libtpu is installed, else fake.
  """
  chip, shape = parse(name)
  if num_slices < 1:
    raise ValueError(f'--num_slices must be >= 1, got {num_slices}.')
  if fake is None:
    fake = not libtpu_available()
  if fake:
    devices = fake_cpu_devices(math.prod(shape) * num_slices)
  else:
    if not libtpu_available():
      raise RuntimeError("libtpu is not installed: pip install -e '.[tpu]' "
                         '(or leave out --nofake to use fake CPU devices).')
    devices = tpu_devices(chip, shape, num_slices)
  return Target(name, chip, shape, num_slices, devices, fake)
