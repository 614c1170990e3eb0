r"""Entry point: flags -> config -> ``bert_jax.train.phases.run(config, workdir)``
(``trainer.run``, twice for a two-phase recipe).

  python launch.py --config=configs/pretrain.py:size=tiny,runlocal --workdir=/tmp/run

The same entry point three ways: ``launch.py`` in a checkout, ``python -m
bert_jax.launch`` and the ``bert-jax`` script of an installed package. A
``--config=configs/KIND.py:ARG`` that names no file from the current directory
loads the package's own config (``bert_jax/configs/``), so after a ``pip
install .`` the README's commands run from any directory.

Any config field can be overridden: ``--config.optim.learning_rate=5e-4``.
On a multi-process environment (Cloud TPU pod slice, several GPU hosts, SLURM)
``jax.distributed.initialize()`` runs before anything else; where nothing is
detected, pass ``--coordinator_address``, ``--num_processes`` and
``--process_id`` (see docs/distributed.md). With several processes the
launched process supervises a child that trains (``--nosupervise`` turns it
off): if another process dies, its last line names the lost process and the
step a relaunch of all of them resumes from, and it exits with status 75.

A bad input (a config value or override, a data file, a checkpoint) prints one
line, ``error: <what and where>``, to stderr and exits with status 2; set
``BERT_JAX_TRACEBACK=1`` (or pass ``--verbosity=1``) to see its traceback.
Anything else is a bug and shows its traceback as usual.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from bert_jax import configs
from bert_jax import errors
# Light (no jax, no orbax): flag errors and --help stay fast.
from bert_jax.train import peers

config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/pretrain.py:size=tiny,runlocal.',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Where checkpoints, metrics and logs go: '
                    'a local path or gs://BUCKET/PATH (needs .[gcs]).')
flags.DEFINE_string('coordinator_address', None,
                    'host:port of process 0, for jax.distributed.')
flags.DEFINE_integer('num_processes', None, 'Number of processes in the job.')
flags.DEFINE_integer('process_id', None, 'This process\'s index.')
flags.DEFINE_bool('distributed', None,
                  'Force jax.distributed.initialize() on (True) or off (False); '
                  'default: on when a multi-process environment is detected.')
flags.DEFINE_integer(
    'heartbeat_timeout_s', 60,
    'With several processes: seconds without a heartbeat after which the '
    'coordinator declares a process lost; the others then stop, naming it '
    '(a lost coordinator is seen within a few seconds). jax\'s default is 100.')
flags.DEFINE_bool(
    'supervise', True,
    'With several processes: run training in a child process and, if the JAX '
    'distributed service aborts it because another process died, end with one '
    'line naming the lost process and the step a relaunch resumes from '
    '(docs/distributed.md, "When a process dies").')
flags.mark_flags_as_required(['config', 'workdir'])

FLAGS = flags.FLAGS

# Environment variables that mean "one of several processes".
_MULTIPROCESS_ENV = ('TPU_WORKER_HOSTNAMES', 'MEGASCALE_COORDINATOR_ADDRESS',
                     'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE',
                     'JAX_COORDINATOR_ADDRESS')


def _multiprocess() -> bool:
  if FLAGS.distributed is not None:
    return FLAGS.distributed
  if FLAGS.coordinator_address:
    return True
  if os.environ.get('SLURM_NTASKS', '1') not in ('', '1'):
    return True
  hosts = os.environ.get('TPU_WORKER_HOSTNAMES', '')
  if ',' in hosts:
    return True
  return any(os.environ.get(k) for k in _MULTIPROCESS_ENV
             if k not in ('SLURM_NTASKS', 'TPU_WORKER_HOSTNAMES'))


def _accelerator_not_used(backend: str) -> str:
  """An accelerator the system shows while JAX runs on the CPU ('' = none)."""
  if backend != 'cpu':
    return ''
  if os.path.exists('/dev/nvidia0') or os.path.exists('/proc/driver/nvidia'):
    return 'An NVIDIA GPU'
  if os.path.exists('/dev/accel0') or os.environ.get('TPU_NAME'):
    return 'A TPU'
  return ''


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not FLAGS['verbosity'].present:
    # The console shows our progress lines and messages (printed), warnings
    # and errors; --verbosity=0 brings back every INFO line (orbax, absl).
    logging.set_verbosity(logging.WARNING)
  if _multiprocess() and FLAGS.supervise and not os.environ.get(peers.SUPERVISED_ENV):
    sys.exit(_supervise())
  import jax  # pylint: disable=g-import-not-at-top
  if _multiprocess():
    if os.environ.get('JAX_PLATFORMS', '') == 'cpu':
      # CPU-only multi-process (tests, clusters without accelerators).
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    # When another process dies, jax aborts this one within about
    # --heartbeat_timeout_s; the supervising parent (_supervise) then says
    # which process was lost and what to do (docs/distributed.md).
    peers.initialize(
        coordinator_address=FLAGS.coordinator_address,
        num_processes=FLAGS.num_processes, process_id=FLAGS.process_id,
        heartbeat_timeout_s=FLAGS.heartbeat_timeout_s)
  devices = jax.local_devices()
  print(f'JAX process {jax.process_index()}/{jax.process_count()}, backend '
        f'{jax.default_backend()} ({devices[0].device_kind}), '
        f'{jax.local_device_count()} local / {jax.device_count()} global devices',
        flush=True)
  unused = _accelerator_not_used(jax.default_backend())
  if unused:
    logging.warning('%s is visible to this machine but JAX runs on the CPU: '
                    'install the accelerator build of jax (pip install -e '
                    "'.[cuda12]', '.[cuda13]' or '.[tpu]'; docs/distributed.md).",
                    unused)
  # Imported here, not at the top: flag errors and --help stay fast (the
  # training stack is ~2.5 s of imports). tests/test_layers.py allows it in
  # this entry point only.
  # pylint: disable=g-import-not-at-top
  from bert_jax.train import checkpoint
  from bert_jax.train import phases
  from bert_jax.train import workdir_lock
  # pylint: enable=g-import-not-at-top
  user_errors = (errors.UserInputError, FileNotFoundError, IsADirectoryError,
                 workdir_lock.WorkdirLocked, checkpoint.CheckpointMismatchError)
  try:
    # phases.run is trainer.run, or two of them for a two-phase recipe.
    phases.run(FLAGS.config, FLAGS.workdir)
  except user_errors as e:
    if _show_tracebacks():
      raise
    _exit_user_error(errors.one_line(e))


def _supervise() -> int:
  """This launcher again, as a child that peers.supervise watches."""
  # The folder holding bert_jax/, so `-m bert_jax.launch` finds this copy.
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  os.environ['PYTHONPATH'] = os.pathsep.join(
      p for p in (root, os.environ.get('PYTHONPATH')) if p)
  return peers.supervise(
      [sys.executable, '-m', 'bert_jax.launch', *sys.argv[1:]],
      workdir=FLAGS.workdir, process_id=FLAGS.process_id,
      num_processes=FLAGS.num_processes)


def _show_tracebacks() -> bool:
  # --verbosity=1 is absl's DEBUG level; our default console is WARNING.
  return bool(os.environ.get(errors.TRACEBACK_ENV)) or FLAGS.verbosity >= 1


def _exit_user_error(message: str) -> None:
  print(message, file=sys.stderr, flush=True)
  sys.exit(errors.EXIT_USER_ERROR)


def packaged_configs(argv: list[str]) -> list[str]:
  """argv with ``--config=configs/KIND.py[:ARG]`` pointed at the packaged file
  when the current directory has no such file (``bert_jax.configs.resolve``)."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith('--config='):
      spec = arg[len('--config='):]
      prefix = '--config='
    elif arg == '--config' and i + 1 < len(out):
      i, spec, prefix = i + 1, out[i + 1], ''
    else:
      continue
    path, sep, rest = spec.partition(':')
    out[i] = prefix + configs.resolve(path) + sep + rest
  return out


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with bad flags and config overrides as one line.

  Without this, a mistyped override (--config.model.hiden_size=3) ends in an
  ml_collections traceback and a wrongly typed one in absl's two-line FATAL
  message with exit status 1.
  """
  try:
    rest = FLAGS(packaged_configs(argv))
    # ml_collections loads the config file lazily, and keeps a failure to
    # load it until the value is read: read it here.
    FLAGS.config.keys()
    return rest
  except Exception as e:  # pylint: disable=broad-except
    message = errors.flag_error_message(e, argv)
    if message is None or os.environ.get(errors.TRACEBACK_ENV):
      raise
    _exit_user_error(f'error: {message}')
    raise  # Not reached (sys.exit); keeps the return type honest.


def run() -> None:
  """The console script ``bert-jax`` (setup.cfg) and ``python -m bert_jax.launch``."""
  app.run(main, flags_parser=parse_flags)


if __name__ == '__main__':
  run()
