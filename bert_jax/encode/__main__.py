"""``python -m bert_jax.encode``: see ``bert_jax/encode/cli.py``."""

import sys

from bert_jax.encode.cli import main

if __name__ == '__main__':
  sys.exit(main())
