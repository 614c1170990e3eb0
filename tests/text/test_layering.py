"""The text layer is the bottom one: it imports nothing else of bert_jax."""

import ast
import os
import subprocess
import sys

import bert_jax.text

TEXT_DIR = os.path.dirname(bert_jax.text.__file__)


def _bert_jax_imports(path):
  """(line, module) of every bert_jax import in a file, at any depth."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  found = []
  for node in ast.walk(tree):  # Function-level imports count too.
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      names = [node.module]
    else:
      continue
    found += [(node.lineno, n) for n in names if n.startswith('bert_jax')]
  return found


def test_text_imports_only_itself():
  bad = []
  for name in sorted(os.listdir(TEXT_DIR)):
    if name.endswith('.py'):
      path = os.path.join(TEXT_DIR, name)
      bad += [f'{path}:{line}: {module}'
              for line, module in _bert_jax_imports(path)
              if not module.startswith('bert_jax.text')]
  assert not bad, 'bert_jax.text must not import higher layers:\n' + '\n'.join(
      bad)


def test_importing_text_loads_no_data_module():
  code = ('import sys, bert_jax.text, bert_jax.text.train_tokenizer; '
          "print([m for m in sys.modules if m.startswith('bert_jax.') and "
          "not m.startswith('bert_jax.text')])")
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, check=True, timeout=120).stdout
  assert out.strip() == '[]'
