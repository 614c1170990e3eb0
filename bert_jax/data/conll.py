"""CoNLL-style NER data: TFDS ``conll2003`` and local CoNLL-format files.

Both give a list of ``Sentence`` (words and their string tags). A local file
has one word per line, the word in the first column and its NER tag in the
last (columns split on whitespace, so ``word POS chunk TAG`` and ``word TAG``
both work), a blank line between sentences, and ``-DOCSTART-`` lines, which
are skipped. Every error names the file and line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

# The NER tags of TFDS conll2003 in its ClassLabel order (tensorflow_datasets
# core/dataset_builders/conll/conll_dataset_builder_utils.py NER_TAGS).
# Used only if the builder's info cannot be read.
CONLL2003_NER_LABELS = ('O', 'B-PER', 'I-PER', 'B-ORG', 'I-ORG', 'B-LOC',
                        'I-LOC', 'B-MISC', 'I-MISC')
# TFDS conll2003 names its validation split 'dev'.
CONLL2003_SPLITS = ('train', 'dev', 'test')
DOCSTART = '-DOCSTART-'


@dataclasses.dataclass(frozen=True)
class Sentence:
  """One sentence: words, their tags, and where each word came from.

  Attributes:
    tokens: The words.
    tags: One NER tag per word.
    where: Per word, a location for error messages ('file.txt:12' or
      'conll2003[train] example 7').
  """
  tokens: tuple[str, ...]
  tags: tuple[str, ...]
  where: tuple[str, ...]


def read_conll_file(path: str) -> list[Sentence]:
  """Reads a CoNLL-format file (word first column, tag last column).

  Args:
    path: The file.

  Returns:
    Its sentences, in order.

  Raises:
    FileNotFoundError: If PATH does not exist.
    ValueError: Naming the file and line, on a line with no tag (one column),
      a line whose number of columns differs from the file's first word line,
      or a file with no sentences.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'CoNLL file not found: {path}')
  sentences: list[Sentence] = []
  tokens, tags, where = [], [], []
  n_columns, first_line = None, 0

  def flush():
    if tokens:
      sentences.append(Sentence(tuple(tokens), tuple(tags), tuple(where)))
      tokens.clear()
      tags.clear()
      where.clear()

  with open(path, encoding='utf-8') as f:
    for lineno, line in enumerate(f, start=1):
      cols = line.split()
      if not cols:
        flush()
        continue
      if cols[0] == DOCSTART:
        flush()  # A document boundary also ends a sentence.
        continue
      if len(cols) < 2:
        raise ValueError(
            f'{path}:{lineno}: the word {cols[0]!r} has no tag; each line '
            'needs the word in the first column and its NER tag in the last.')
      if n_columns is None:
        n_columns, first_line = len(cols), lineno
      elif len(cols) != n_columns:
        raise ValueError(
            f'{path}:{lineno}: {len(cols)} columns, but line {first_line} has '
            f'{n_columns}; every word line needs the same columns (word first, '
            'tag last).')
      tokens.append(cols[0])
      tags.append(cols[-1])
      where.append(f'{path}:{lineno}')
  flush()
  if not sentences:
    raise ValueError(f'{path}: no sentences (the file is empty or holds only '
                     f'blank and {DOCSTART} lines).')
  return sentences


def infer_labels(sentences: Sequence[Sentence]) -> list[str]:
  """The tag set of SENTENCES, sorted, with 'O' first when present."""
  tags = {t for s in sentences for t in s.tags}
  return (['O'] if 'O' in tags else []) + sorted(tags - {'O'})


def check_tags(sentences: Sequence[Sentence], labels: Sequence[str],
               labels_from: str) -> None:
  """Raises ValueError at the first tag not in LABELS, naming its line.

  Args:
    sentences: Sentences to check (e.g. of the eval file).
    labels: The tags the model is trained on.
    labels_from: Where LABELS came from, for the message.
  """
  known = set(labels)
  for s in sentences:
    for tok, tag, where in zip(s.tokens, s.tags, s.where):
      if tag not in known:
        raise ValueError(
            f'{where}: tag {tag!r} (word {tok!r}) is not one the model is '
            f'trained on; the labels from {labels_from} are {list(labels)}.')


def _text(x) -> str:
  # Real TFDS records decode Text features as bytes; mocks give str.
  return x.decode('utf-8') if isinstance(x, bytes) else str(x)


def conll2003_labels(data_dir: str = '') -> list[str]:
  """NER label names as the installed TFDS conll2003 builder defines them."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder('conll2003', data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise RuntimeError(
        'TFDS has no conll2003 builder. Without TensorFlow installed, TFDS only '
        'registers it when h5py is installed (pip install h5py).') from e
  return list(builder.info.features['ner'].names)


def load_conll2003(split: str, data_dir: str = '', max_examples: int = 0
                   ) -> tuple[list[Sentence], list[str]]:
  """Reads a split of TFDS conll2003 through ``tfds.data_source``.

  Args:
    split: A TFDS split of conll2003 ('train', 'dev', 'test', or a slice such
      as 'train[:10%]').
    data_dir: TFDS data_dir ('' = the TFDS default).
    max_examples: > 0 keeps only the first this many sentences.

  Returns:
    (sentences, label names in ClassLabel order).
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  labels = conll2003_labels(data_dir)
  source = tfds.data_source('conll2003', split=split, data_dir=data_dir or None)
  n = len(source) if max_examples <= 0 else min(max_examples, len(source))
  sentences = []
  for i in range(n):
    ex = source[i]
    tokens = [_text(t) for t in ex['tokens']]
    ner = [int(t) for t in ex['ner']]
    where = f'conll2003[{split}] example {i}'
    if len(tokens) != len(ner):
      raise ValueError(f'{where}: {len(tokens)} tokens but {len(ner)} ner tags.')
    bad = [t for t in ner if not 0 <= t < len(labels)]
    if bad:
      raise ValueError(f'{where}: ner ids {bad} outside the {len(labels)} '
                       f'labels {labels}.')
    if tokens:  # TFDS may keep empty sentences; there is nothing to tag.
      sentences.append(Sentence(tuple(tokens), tuple(labels[t] for t in ner),
                                (where,) * len(tokens)))
  if not sentences:
    raise ValueError(f'conll2003[{split}] (data_dir={data_dir or "default"}) '
                     'has no sentences.')
  return sentences, labels
