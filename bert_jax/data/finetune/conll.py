"""CoNLL-style NER data: TFDS ``conll2003`` and local CoNLL-format files.

Both give a list of ``Sentence`` (words and their string tags). A local file
has one word per line, the word in the first column and its NER tag in the
last (columns split on whitespace, so ``word POS chunk TAG`` and ``word TAG``
both work), a blank line between sentences, and ``-DOCSTART-`` lines, which
are skipped. Every error names the file and line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bert_jax.data import text_files
from bert_jax.data import tfds_source
from bert_jax.errors import UserInputError

# The NER tags of TFDS conll2003 in its ClassLabel order (tensorflow_datasets
# core/dataset_builders/conll/conll_dataset_builder_utils.py NER_TAGS).
# Reading uses the builder's own names (`conll2003_labels`); this copy is for
# code without TFDS at hand (tests build mock records with it), and a test
# checks it against the installed builder.
CONLL2003_NER_LABELS = ('O', 'B-PER', 'I-PER', 'B-ORG', 'I-ORG', 'B-LOC',
                        'I-LOC', 'B-MISC', 'I-MISC')
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
    InputFileNotFoundError: If PATH does not exist.
    UserInputError: Naming the file and line, on a line with no tag (one
      column), a line whose number of columns differs from the file's first
      word line, text that is not UTF-8, or a file with no sentences.
  """
  text_files.check_file(path, 'CoNLL file')
  sentences: list[Sentence] = []
  tokens, tags, where = [], [], []
  n_columns, first_line = None, 0

  def flush():
    if tokens:
      sentences.append(Sentence(tuple(tokens), tuple(tags), tuple(where)))
      tokens.clear()
      tags.clear()
      where.clear()

  # BOM, CRLF (split() drops the '\r') and encoding: see text_files.
  for lineno, line in text_files.iter_lines(path):
    cols = line.split()
    if not cols:
      flush()
      continue
    if cols[0] == DOCSTART:
      flush()  # A document boundary also ends a sentence.
      continue
    if len(cols) < 2:
      raise UserInputError(
          f'{path}:{lineno}: the word {cols[0]!r} has no tag; each line '
          'needs the word in the first column and its NER tag in the last.')
    if n_columns is None:
      n_columns, first_line = len(cols), lineno
    elif len(cols) != n_columns:
      raise UserInputError(
          f'{path}:{lineno}: {len(cols)} columns, but line {first_line} has '
          f'{n_columns}; every word line needs the same columns (word first, '
          'tag last).')
    tokens.append(cols[0])
    tags.append(cols[-1])
    where.append(f'{path}:{lineno}')
  flush()
  if not sentences:
    raise UserInputError(f'{path}: no sentences (the file is empty or holds only '
                     f'blank and {DOCSTART} lines).')
  return sentences


def infer_labels(sentences: Sequence[Sentence]) -> list[str]:
  """The tag set of SENTENCES, sorted, with 'O' first when present."""
  tags = {t for s in sentences for t in s.tags}
  return (['O'] if 'O' in tags else []) + sorted(tags - {'O'})


def check_tags(sentences: Sequence[Sentence], labels: Sequence[str],
               labels_from: str) -> None:
  """Raises UserInputError at the first tag not in LABELS, naming its line.

  Args:
    sentences: Sentences to check (e.g. of the eval file).
    labels: The tags the model is trained on.
    labels_from: Where LABELS came from, for the message.
  """
  known = set(labels)
  for s in sentences:
    for tok, tag, where in zip(s.tokens, s.tags, s.where):
      if tag not in known:
        raise UserInputError(
            f'{where}: tag {tag!r} (word {tok!r}) is not one the model is '
            f'trained on; the labels from {labels_from} are {list(labels)}.')


def conll2003_labels(data_dir: str = '') -> list[str]:
  """NER label names as the installed TFDS conll2003 builder defines them."""
  info = tfds_source.builder('conll2003', data_dir).info
  return list(info.features['ner'].names)


def load_conll2003(split: str, data_dir: str = '', max_examples: int = 0
                   ) -> tuple[list[Sentence], list[str]]:
  """Reads a split of TFDS conll2003 through ``tfds.data_source``.

  Args:
    split: A TFDS split of conll2003 ('train', 'dev' (its validation split),
      'test', or a slice such as 'train[:10%]').
    data_dir: TFDS data_dir ('' = the TFDS default).
    max_examples: 0 = all; N > 0 keeps only the first N sentences.

  Returns:
    (sentences, label names in ClassLabel order).

  Raises:
    RuntimeError: If the split cannot be opened (see `tfds_source`).
    ValueError: On a negative max_examples, a record whose tokens and tags
      differ in number or whose tag ids are out of range, or no sentences.
  """
  labels = conll2003_labels(data_dir)
  records = tfds_source.read_records('conll2003', split, data_dir,
                                     max_examples)
  sentences = []
  for i, ex in enumerate(records):
    tokens = [tfds_source.as_text(t) for t in ex['tokens']]
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
