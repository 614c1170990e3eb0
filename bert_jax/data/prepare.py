"""Deprecated path, kept for one release: use `python -m bert_jax.data.pretrain.prepare`.

`bert_jax/data/` is split by flow (`pretrain/`, `finetune/`); this module
only forwards the old command line to the new one, with a warning.
"""

import runpy
import sys

if __name__ == '__main__':
  print('warning: python -m bert_jax.data.prepare is deprecated and will be '
        'removed in the next release; use python -m bert_jax.data.pretrain.prepare',
        file=sys.stderr)
  runpy.run_module('bert_jax.data.pretrain.prepare', run_name='__main__', alter_sys=True)
