"""One entry point three ways (launch.py, python -m bert_jax.launch, bert-jax),
and ``configs/KIND.py`` found inside the package from any directory."""

import os
import subprocess
import sys

import pytest

from bert_jax import configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_resolve_prefers_an_existing_file(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  packaged = os.path.join(configs.DIR, 'pretrain.py')
  assert configs.resolve('configs/pretrain.py') == packaged
  assert configs.resolve('./configs/finetune.py') == os.path.join(configs.DIR, 'finetune.py')
  assert configs.resolve('configs/nope.py') == 'configs/nope.py'   # Its error names it.
  assert configs.resolve('my/pretrain.py') == 'my/pretrain.py'
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / 'pretrain.py').write_text('')
  assert configs.resolve('configs/pretrain.py') == 'configs/pretrain.py'


@pytest.mark.parametrize('entry, config', [
    (['-m', 'bert_jax.launch'], ['--config=configs/finetune.py:task=sst2,size=tiny']),
    (['-m', 'bert_jax.launch'], ['--config', 'configs/finetune.py:task=sst2,size=tiny']),
    ([os.path.join(ROOT, 'launch.py')], ['--config=configs/finetune.py:task=sst2,size=tiny']),
])
def test_entry_points_load_packaged_configs_from_elsewhere(tmp_path, entry, config):
  # A mistyped override stops the launcher right after the config loaded:
  # the error names the field, so the config file was found.
  env = dict(os.environ, PYTHONPATH=ROOT)
  r = subprocess.run([sys.executable, *entry, *config, '--workdir', str(tmp_path / 'w'),
                      '--config.optim.learnin_rate=1'], cwd=tmp_path, env=env,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 2, r.stderr[-2000:]
  assert 'learnin_rate' in r.stderr and 'learning_rate' in r.stderr, r.stderr[-2000:]
