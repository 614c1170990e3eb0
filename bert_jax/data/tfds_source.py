"""TFDS datasets through ``tfds.data_source`` (array_record, no TensorFlow).

GLUE, CoNLL-2003, SQuAD and TFDS text corpora all open their splits here, so
they fail the same way and count ``max_examples`` the same way:

* ``max_examples``: 0 or None reads every record; N > 0 reads the first N;
  a negative value is a ValueError (`check_max_examples`). Local-file readers
  follow the same rule.
* A dataset TFDS does not know raises the same error, naming it and the h5py
  pitfall (without TensorFlow, TFDS registers builders such as glue and
  conll2003 only when h5py is installed).
* A split that cannot be opened (not prepared, prepared as tfrecord, a bad
  split name) raises one ``DatasetUnavailableError`` (a RuntimeError and a
  ``UserInputError``) that names the dataset, split and data_dir, and the
  command that prepares it. Nothing is downloaded here: prepare datasets
  first (``tfds build``), once, where there is network.

``tensorflow_datasets`` is imported on first use: it is slow to import, and
the modules that use this one (e.g. `glue`, for its task table) are imported
by code that never reads a dataset.
"""

from collections.abc import Iterator
import numbers
from typing import Any

import numpy as np

from bert_jax import errors


def check_max_examples(max_examples: int | None) -> int:
  """The one ``max_examples`` rule: 0 = all, N > 0 = the first N.

  Args:
    max_examples: 0 or None (all records), or a positive count (usually
      ``config.data.max_train_examples`` / ``max_eval_examples``).

  Returns:
    0 for "all", else the count.

  Raises:
    ValueError: If it is negative or not an integer.
  """
  if max_examples is None:
    return 0
  if (isinstance(max_examples, bool) or
      not isinstance(max_examples, numbers.Integral) or max_examples < 0):
    raise ValueError(
        f'max_examples={max_examples!r}: use 0 (or None) for all examples, or '
        'a positive count to keep only the first N (config.data.'
        'max_train_examples / max_eval_examples).')
  return int(max_examples)


def as_text(value: Any) -> str:
  """A Text feature's value as str.

  Real array_record sources give bytes (or a 0-d array of them); TFDS's mocks
  give str.
  """
  if isinstance(value, np.ndarray):
    value = value.item()
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def _where(name: str, split: str | None, data_dir: str | None) -> str:
  split_part = '' if split is None else f' split {split!r}'
  where = data_dir or 'default: $TFDS_DATA_DIR or ~/tensorflow_datasets'
  return f'TFDS dataset {name!r}{split_part} (data_dir={where})'


def _not_registered(name: str, data_dir: str | None,
                    error: Exception) -> RuntimeError:
  return errors.DatasetUnavailableError(
      f'{_where(name, None, data_dir)}: TFDS has no builder of that name '
      f'({type(error).__name__}). Check the spelling; and note that without '
      'TensorFlow installed, TFDS silently skips registering builders such as '
      'glue and conll2003 unless h5py is installed (pip install h5py).')


def builder(name: str, data_dir: str | None = None) -> Any:
  """``tfds.builder(name)``, failing with the message of an unknown dataset.

  Reading a builder's info (e.g. class names) needs no prepared data.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise _not_registered(name, data_dir, e) from e


def open_split(name: str, split: str, data_dir: str | None = None) -> Any:
  """Opens one split of a TFDS dataset as a random-access data source.

  Args:
    name: TFDS name, with config and version if any ('glue/cola',
      'squad/v1.1', 'wikipedia/20230601.en:1.0.0').
    split: A TFDS split, possibly sliced ('train', 'validation[:10%]').
    data_dir: Where TFDS keeps prepared data; None or '' = TFDS's default.

  Returns:
    The data source (``len`` and ``[i]`` give records as dicts).

  Raises:
    RuntimeError: If TFDS does not know NAME, or the split cannot be opened;
      see the module docstring.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    # download=False: a split that is not prepared fails here at once, naming
    # the command that prepares it, instead of each host of a run trying to
    # download and prepare it (minutes of retries on a host without network).
    return tfds.data_source(name, split=split, data_dir=data_dir or None,
                            download=False)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise _not_registered(name, data_dir, e) from e
  except Exception as e:  # Anything else: say what to prepare, and how.
    dir_flag = f' --data_dir={data_dir}' if data_dir else ''
    dir_arg = f', data_dir={data_dir!r}' if data_dir else ''
    raise errors.DatasetUnavailableError(
        f'Could not open {_where(name, split, data_dir)}: '
        f'{type(e).__name__}: {e}\nPrepare it first, in array_record format, '
        'on a machine with network access (TensorFlow needed there only):\n'
        f'  tfds build {name} --file_format=array_record{dir_flag}\nor\n'
        '  python -c "import tensorflow_datasets as tfds; '
        f"tfds.builder('{name}'{dir_arg}).download_and_prepare("
        "file_format='array_record')\"\n"
        'and check that the split exists.') from e


def read_records(name: str, split: str, data_dir: str | None = None,
                 max_examples: int | None = 0) -> Iterator[dict[str, Any]]:
  """The records of a TFDS split, in order, as dicts of numpy values.

  The split is opened (and ``max_examples`` checked) when this is called, not
  when the iterator is first advanced, so a missing dataset fails at once.

  Args:
    name: TFDS name (see `open_split`).
    split: TFDS split.
    data_dir: TFDS data_dir; None or '' = the default.
    max_examples: 0 or None = all; N > 0 = the first N.

  Returns:
    An iterator over the records. Text features are bytes from real data and
    str from TFDS's mocks: read them with `as_text`.

  Raises:
    RuntimeError: See `open_split`.
    ValueError: On a negative ``max_examples``.
  """
  limit = check_max_examples(max_examples)
  source = open_split(name, split, data_dir)
  n = len(source) if not limit else min(limit, len(source))
  return _iterate(source, n)


def _iterate(source: Any, n: int) -> Iterator[dict[str, Any]]:
  # One record at a time: decoding dominates the cost anyway, and the data
  # source of tfds.testing.mock_data (what tests use) breaks on the batched
  # __getitems__.
  for i in range(n):
    yield source[i]
