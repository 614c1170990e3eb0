"""The layers contract (setup.cfg, docs/extending.md) and its house rule: no
function-level import of a bert_jax module, the usual way to hide a cycle."""

import ast
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'bert_jax')
# The launcher defers the training stack (~2.5 s of imports) to after flag
# parsing, so a mistyped flag and --help answer at once; it is an entry point,
# at the top of the contract, so the deferred import hides no cycle.
DEFERRED_OK = {os.path.join('bert_jax', 'launch.py')}


def _nested_bert_jax_imports(path):
  """(line, module) of bert_jax imports inside functions or classes."""
  with open(path, encoding='utf-8') as f:
    tree = ast.parse(f.read(), path)
  found = []
  for top in tree.body:
    if not isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      continue
    for node in ast.walk(top):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        names = [node.module]
      else:
        continue
      found += [(node.lineno, n) for n in names if n.startswith('bert_jax')]
  return found


def test_no_function_level_bert_jax_imports():
  bad = []
  for dirpath, _, files in os.walk(PACKAGE):
    for name in sorted(files):
      if name.endswith('.py'):
        path = os.path.join(dirpath, name)
        if os.path.relpath(path, ROOT) in DEFERRED_OK:
          continue
        bad += [f'{os.path.relpath(path, ROOT)}:{line}: {module}'
                for line, module in _nested_bert_jax_imports(path)]
  assert not bad, 'Import bert_jax modules at module level:\n' + '\n'.join(bad)


def test_layers_contract_is_kept():
  exe = shutil.which('lint-imports') or os.path.join(
      os.path.dirname(sys.executable), 'lint-imports')
  if not os.path.exists(exe):
    pytest.skip('import-linter is not installed (pip install -e .[test]).')
  r = subprocess.run([exe, '--no-cache'], cwd=ROOT, capture_output=True,
                     text=True, timeout=300)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
  assert 'Contracts: 1 kept, 0 broken.' in r.stdout
