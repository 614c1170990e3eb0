"""The command lines of data/ before its split by flow still run, with a warning."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize('old, new', [
    ('prepare', 'pretrain.prepare'),
    ('tokenizer_cli', 'pretrain.tokenizer_cli'),
    ('builtin_topics', 'finetune.builtin_topics'),
])
def test_old_module_path_forwards_with_a_warning(old, new):
  proc = subprocess.run(
      [sys.executable, '-m', f'bert_jax.data.{old}', '--help'],
      capture_output=True, text=True, timeout=120)
  # absl's --help exits 1, argparse's 0: either way the new module answered.
  assert proc.returncode in (0, 1), proc.stderr
  assert f'use python -m bert_jax.data.{new}' in proc.stderr
  assert '--out' in proc.stdout + proc.stderr  # the new module's help
