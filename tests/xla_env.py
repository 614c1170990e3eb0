"""XLA flags of the test runs: fake CPU devices and cheaper compiles.

Tests are a few steps of tiny models, so compiling is most of their time.
``CHEAP_COMPILE`` lowers XLA:CPU's optimisation level (measured on
tests/train/test_step.py and tests/tasks/test_classification.py: 30% less
wall time, 40% less CPU time); what a program computes is unchanged beyond
float rounding, and every run a test compares with another (a killed run with
an uninterrupted one, two processes with one) is compiled the same way, the
subprocesses included (``flags``). Set XLA_FLAGS yourself to test with other
flags: conftest keeps it, and ``flags`` keeps everything in it but the count.
"""

import os

CHEAP_COMPILE = ('--xla_backend_optimization_level=0 '
                 '--xla_llvm_disable_expensive_passes=true')
DEFAULT = f'--xla_force_host_platform_device_count=8 {CHEAP_COMPILE}'


def flags(devices: int) -> str:
  """This process's XLA_FLAGS with DEVICES fake CPU devices instead."""
  # pylint: disable-next=import-outside-toplevel
  from experiments.reliability import chaos_launch
  return chaos_launch.device_flags(
      {'XLA_FLAGS': os.environ.get('XLA_FLAGS', DEFAULT)}, devices)
