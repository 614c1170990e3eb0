"""The text layer sits at the bottom, on bert_jax.storage (file access, local
or gs://) and bert_jax.errors (the user-input error class) only: importing it
loads nothing else of bert_jax (the import
contract itself is checked in tests/test_layers.py)."""

import subprocess
import sys


def test_importing_text_loads_no_data_module():
  code = ('import sys, bert_jax.text, bert_jax.text.train_tokenizer; '
          "print([m for m in sys.modules if m.startswith('bert_jax.') and "
          "not m.startswith(('bert_jax.text', 'bert_jax.storage', "
          "'bert_jax.errors'))])")
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, check=True, timeout=120).stdout
  assert out.strip() == '[]'
