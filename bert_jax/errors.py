"""Errors that are the user's to fix, and how an entry point shows them.

A ``UserInputError`` means "this input is wrong": a data file, a checkpoint
folder or a config value. Its message is one line that names the file and
line (or the config field) and says what was expected, so the entry points
(``launch.py``, ``python -m bert_jax.convert``) print it as ``error: ...``
with exit code 2 and no traceback. Anything else is a bug and keeps its
traceback. The module imports nothing of bert_jax: it is the lowest layer
(setup.cfg), so every reader may raise these.

Both classes subclass the built-in type a caller would catch without knowing
this module (``ValueError``, ``FileNotFoundError``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from absl import flags

# Exit status of a run refused for bad input (argparse's and absl's usage code).
EXIT_USER_ERROR = 2
# Set to 1 to see the traceback of a user error too (for reporting a bug in a
# check, or finding where a message came from).
TRACEBACK_ENV = 'BERT_JAX_TRACEBACK'


class UserInputError(ValueError):
  """A bad input file, checkpoint or config value; the message says which."""


class InputFileNotFoundError(UserInputError, FileNotFoundError):
  """A file or folder the config names does not exist."""


class DatasetUnavailableError(UserInputError, RuntimeError):
  """A dataset the config names (TFDS) is unknown or not prepared here."""


def one_line(exc: BaseException) -> str:
  """The message an entry point prints for a user error: 'error: ...'.

  Multi-line messages (a list of mismatched tensors) keep their lines: the
  first line says what is wrong, the others list it.
  """
  # str(KeyError('x')) is "'x'": show the message, not its repr.
  text = (str(exc.args[0]) if isinstance(exc, KeyError) and exc.args
          else str(exc))
  return f'error: {text.strip() or type(exc).__name__}'


# --- absl / ml_collections flag errors. ---

_FLAG_VALUE_RE = re.compile(r'^flag --(?P<name>[^=\s]+)=(?P<value>.*?): '
                            r'(?P<reason>.*)$', re.S)
_QUOTED_RE = re.compile(r"'([^'\\]+)")
_SUGGEST_RE = re.compile(r'Did you mean "([^"]+)"')
_QUOTES = '\'"'


def _config_overrides(argv: Sequence[str], flag: str) -> list[tuple[str, str]]:
  """(dotted field path, raw argument) of each ``--FLAG.a.b=v`` in ARGV."""
  out = []
  for arg in argv:
    m = re.match(rf'^--?{re.escape(flag)}\.([\w.]+)(=.*)?$', arg)
    if m:
      out.append((m.group(1), arg))
  return out


def _unknown_field(exc: BaseException, argv: Sequence[str], flag: str) -> str:
  """One line for an override of a field the config does not have.

  ml_collections raises KeyError/AttributeError with a doubly quoted repr
  (``'\\'hiden_size\\'\\nDid you mean "hidden_size" ...'``); the field and the
  suggestions are read out of it and the override is found in ARGV.
  """
  text = str(exc)
  key = next(iter(_QUOTED_RE.findall(text.replace("\\'", "'"))), '')
  suggestions = _SUGGEST_RE.findall(text)
  overrides = _config_overrides(argv, flag)
  for path, arg in overrides:
    parts = path.split('.')
    if key in parts:
      parent = '.'.join([flag] + parts[:parts.index(key)])
      break
  else:
    # Not a missing name (e.g. a field under an int): ml_collections' own
    # words, unquoted.
    arg = overrides[0][1] if overrides else f'--{flag}'
    return f'{arg.split("=")[0]}: {text.strip(_QUOTES)}'
  hint = (f'; did you mean {" or ".join(repr(s) for s in suggestions)}?'
          if suggestions else '; check the spelling against the config file.')
  return f'{arg.split("=")[0]}: {parent} has no field {key!r}{hint}'


def _flag_type(name: str, flag_values: flags.FlagValues) -> str:
  try:
    return flag_values[name].parser.flag_type()
  except (KeyError, AttributeError):
    return ''


def flag_error_message(exc: BaseException, argv: Sequence[str],
                       config_flag: str = 'config',
                       flag_values: flags.FlagValues | None = None
                       ) -> str | None:
  """One line for an error raised while absl parses ARGV; None if not one.

  Covers a value of the wrong type (``--config.train.num_steps=abc``), an
  unknown field (``--config.model.hiden_size=3``, with close matches), a
  config file that fails to load or rejects its argument, and absl's own
  errors (unknown flag, missing value, missing required flag).

  Args:
    exc: What ``flag_values(argv)`` raised.
    argv: The command line.
    config_flag: The name of the ml_collections config flag.
    flag_values: The flags parsed (default: absl's global FLAGS).
  """
  if 'Failed loading config file' in str(exc):
    # ml_collections lists each path it tried; the last line says why.
    lines = [l.strip() for l in str(exc).splitlines() if l.strip()]
    return f'--{config_flag}: cannot load the config file: {lines[-1]}'
  if isinstance(exc, (KeyError, AttributeError)) and 'Did you mean' in str(exc):
    return _unknown_field(exc, argv, config_flag)
  if isinstance(exc, (KeyError, AttributeError)) and _config_overrides(
      argv, config_flag):
    return _unknown_field(exc, argv, config_flag)
  if not isinstance(exc, flags.Error):
    return None
  text = str(exc)
  m = _FLAG_VALUE_RE.match(text)
  if not m:
    return text.strip().splitlines()[0]
  name, value, reason = m['name'], m['value'], m['reason'].strip()
  if reason.startswith('Error whilst parsing config file'):
    # The config file's get_config raised: its traceback is in the text; its
    # last line is the message (e.g. "Config argument size='hugee'; ...").
    lines = [l for l in reason.splitlines() if l.strip()]
    reason = re.sub(r'^\w+(Error|Exception): ', '', lines[-1].strip())
  elif '\n' in reason:
    reason = ' '.join(l.strip() for l in reason.splitlines() if l.strip())
  if 'must have a value other than None' in reason:
    return f'--{name} is required.'
  kind = _flag_type(name, flags.FLAGS if flag_values is None else flag_values)
  if kind not in ('int', 'float', 'bool'):
    kind = ''  # A group of fields (ConfigDict) or free text: absl says why.
  prefix = config_flag + '.'
  field = name[len(prefix):] if name.startswith(prefix) else ''
  if field and kind:
    # absl's reason ("invalid literal for int() with base 10") says less.
    return (f'--{name}={value}: config field {field} takes {_article(kind)} '
            f'{kind}, got {value!r}.')
  return f'--{name}={value}: {reason}'


def _article(word: str) -> str:
  return 'an' if word[:1] in 'aeiou' else 'a'

