"""Experiment definitions and scripts, one folder per purpose.

  benchmarks/   step, data and fine-tuning benchmarks and their peers
  reliability/  the kill -9 and GCS chaos harnesses
  scaling/      ahead-of-time compilation for slices; compile time vs size
  sweeps/       sweep definitions (python -m bert_jax.lab.sweep --sweep ...)
  studies/      pretrain -> fine-tune study definitions (bert_jax.lab.study)
  scripts/      shell scripts

The machinery that runs them (sweeps, studies, HP search, reports) is the
package ``bert_jax.lab``. The old flat paths (``python -m experiments.sweep``,
``from experiments import report``, ``python -m experiments.benchmark_step``)
keep working for one release through the table below, with a warning.
"""

import importlib
import importlib.abc
import importlib.util
import sys

# Old module (experiments.X) -> where it lives now. Remove after one release.
MOVED = {
    **{m: f'bert_jax.lab.{m}' for m in (
        'aggregate', 'hpsearch', 'kfold', 'launchers', 'plots', 'report',
        'search_space', 'stats', 'study', 'study_report', 'sweep', 'trials')},
    **{m: f'experiments.benchmarks.{m}' for m in (
        'benchmark_data', 'benchmark_finetune', 'benchmark_flax_peer',
        'benchmark_peer', 'benchmark_report', 'benchmark_step', 'finetune_peer',
        'matmul_ceiling', 'objective_examples', 'profile_step')},
    **{m: f'experiments.reliability.{m}' for m in (
        'chaos', 'chaos_compare', 'chaos_gcs', 'chaos_launch')},
    **{m: f'experiments.scaling.{m}' for m in (
        'aot', 'aot_report', 'aot_topology', 'compile_scale')},
}


def _warn(old: str, new: str) -> None:
  # Printed, not warnings.warn: DeprecationWarning is hidden by default, and a
  # user running `python -m experiments.sweep` should see it.
  print(f'warning: {old} moved to {new}; the old path is deprecated and will '
        'be removed in the next release.', file=sys.stderr)


class _Forward(importlib.abc.Loader):
  """Loads an old path: the new module itself for an import, or its code
  as __main__ for ``python -m experiments.X`` (runpy asks get_code)."""

  def __init__(self, old: str, new: str):
    self.old, self.new = old, new

  def create_module(self, spec):
    return None

  def exec_module(self, module):
    _warn(self.old, self.new)
    # The importer re-reads sys.modules after exec_module: the old name then
    # is the new module object itself, not a copy with state of its own.
    sys.modules[self.old] = importlib.import_module(self.new)

  def get_code(self, fullname):
    _warn(f'python -m {self.old}', f'python -m {self.new}')
    return compile(f'import runpy\nrunpy.run_module({self.new!r}, '
                   "run_name='__main__', alter_sys=True)\n", self.old, 'exec')


class _MovedFinder(importlib.abc.MetaPathFinder):

  def find_spec(self, fullname, path=None, target=None):
    prefix, _, name = fullname.partition('.')
    if prefix != __name__ or name not in MOVED:
      return None
    return importlib.util.spec_from_loader(fullname, _Forward(fullname, MOVED[name]))


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
  sys.meta_path.append(_MovedFinder())
