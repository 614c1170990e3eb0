"""The configs, shipped with the package: ``get_config(arg)`` per file.

``pretrain.py`` and ``finetune.py`` are what ``--config=configs/KIND.py:ARG``
loads (``common.py`` holds what both share). In a checkout the thin files in
``configs/`` at the top forward here, so ``python launch.py
--config=configs/pretrain.py:size=tiny,runlocal`` works as written; after a
``pip install`` the launcher (``bert-jax``, ``python -m bert_jax.launch``)
finds ``configs/KIND.py`` here when the current directory has no such file.
"""

import os

DIR = os.path.dirname(os.path.abspath(__file__))
# The config files a user names by path (common.py is shared code).
NAMES = ('pretrain', 'finetune')


def resolve(path: str) -> str:
  """A config file path as given, or the packaged one it names.

  ``configs/pretrain.py`` (or ``./configs/...``) resolves to this package's
  file when no such file exists from the current directory: an installed
  package then runs the commands the README shows from any directory.
  """
  if os.path.exists(path):
    return path
  parts = os.path.normpath(path).split(os.sep)
  if len(parts) == 2 and parts[0] == 'configs' and parts[1] in {
      f'{n}.py' for n in NAMES}:
    return os.path.join(DIR, parts[1])
  return path
