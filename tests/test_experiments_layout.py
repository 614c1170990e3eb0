"""experiments/ holds definitions and scripts by purpose; the machinery is
bert_jax.lab. The old flat paths still work for one release, with a warning
(the MOVED table in experiments/__init__.py)."""

import os
import subprocess
import sys

import pytest

import experiments

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# "About ten" modules a folder (docs/extending.md, "Where things go"):
# benchmarks/ has ten; the corpus-scale ones are in benchmarks/corpus/
MAX_MODULES = 12


def test_no_folder_is_crowded_and_old_paths_are_gone():
  top = os.path.join(ROOT, 'experiments')
  for dirpath, _, files in os.walk(top):
    modules = [f for f in files if f.endswith('.py') and f != '__init__.py']
    assert len(modules) <= MAX_MODULES, (dirpath, modules)
  # The old flat modules moved: the top holds folders and __init__.py only.
  assert not [f for f in os.listdir(top) if f.endswith('.py') and f != '__init__.py']
  for old, new in experiments.MOVED.items():
    assert not os.path.exists(os.path.join(top, f'{old}.py'))
    assert os.path.exists(os.path.join(ROOT, *new.split('.')) + '.py'), new


def test_old_import_is_the_new_module():
  from experiments import sweep  # pylint: disable=g-import-not-at-top
  from bert_jax.lab import sweep as lab_sweep  # pylint: disable=g-import-not-at-top
  assert sweep is lab_sweep
  assert lab_sweep.__spec__.name == 'bert_jax.lab.sweep'
  import experiments.stats  # pylint: disable=g-import-not-at-top
  assert experiments.stats.__name__ == 'bert_jax.lab.stats'


@pytest.mark.parametrize('old, new', [
    ('report', 'bert_jax.lab.report'),
    ('study_report', 'bert_jax.lab.study_report'),
])
def test_old_command_forwards_with_a_warning(old, new):
  proc = subprocess.run([sys.executable, '-m', f'experiments.{old}', '--help'],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert f'python -m experiments.{old} moved to python -m {new}' in proc.stderr
  assert 'deprecated' in proc.stderr
  assert f'usage: python -m {new}' in proc.stdout
