"""The wheel ships what an installed user needs: the configs, the launcher,
the experiment machinery (docs/extending.md, "Where things go").

Built offline from a copy of the sources (so the checkout gets no build/ or
egg-info), then unpacked (a pure-Python wheel's install is an unzip) and used
from a directory with no configs/ in it: the configs load, and the launcher
finds ``configs/pretrain.py`` inside the package, as after ``pip install .``.
"""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ('bert_jax', 'setup.cfg', 'pyproject.toml', 'README.md')

_CHECK = r'''
import os, sys
import bert_jax
assert bert_jax.__file__.startswith(sys.argv[1]), bert_jax.__file__
from bert_jax.configs import finetune, pretrain
config = pretrain.get_config('size=tiny,runlocal')
assert config.model.hidden_size > 0 and finetune.get_config('task=sst2')
# config_flags defines the --config.* override flags from sys.argv on import.
sys.argv = ['bert-jax', '--config=configs/pretrain.py:size=tiny,runlocal',
            '--config.train.num_steps=3', '--workdir=unused']
from bert_jax import launch
assert not os.path.exists('configs')
launch.parse_flags(sys.argv)
assert launch.FLAGS.config.train.num_steps == 3
print('ok', launch.FLAGS['config'].config_filename)
'''


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
  src = tmp_path_factory.mktemp('src')
  for name in SOURCES:
    path = os.path.join(ROOT, name)
    if os.path.isdir(path):
      shutil.copytree(path, src / name,
                      ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
    else:
      shutil.copy(path, src / name)
  dist = tmp_path_factory.mktemp('dist')
  r = subprocess.run(
      [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
       '--no-index', '-q', '-w', str(dist), str(src)],
      capture_output=True, text=True, timeout=180)
  if r.returncode and 'No module named pip' in r.stderr:
    pytest.skip('pip is not installed in this environment.')
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
  (path,) = dist.glob('bert_jax-*.whl')
  return path


def test_wheel_holds_configs_launcher_and_lab(wheel):
  with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    entry_points = next(z.read(n).decode() for n in names
                        if n.endswith('.dist-info/entry_points.txt'))
  for name in ('configs/__init__.py', 'configs/common.py', 'configs/pretrain.py',
               'configs/finetune.py', 'launch.py', 'lab/sweep.py', 'lab/report.py',
               'data/pretrain/prepare.py', 'data/finetune/glue.py'):
    assert f'bert_jax/{name}' in names, name
  assert 'bert-jax = bert_jax.launch:run' in entry_points
  # Nothing from outside the package: tests and experiments stay in the checkout.
  assert not [n for n in names if n.startswith(('tests/', 'experiments/', 'configs/'))]


def test_installed_configs_load_from_any_directory(wheel, tmp_path):
  site = tmp_path / 'site'
  with zipfile.ZipFile(wheel) as z:
    z.extractall(site)
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  env['PYTHONPATH'] = str(site)
  r = subprocess.run([sys.executable, '-c', _CHECK, str(site)], cwd=elsewhere,
                     env=env, capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
  assert r.stdout.startswith('ok ' + str(site / 'bert_jax' / 'configs' / 'pretrain.py'))
