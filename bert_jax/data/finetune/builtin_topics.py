"""A real-text, offline downstream task: which topic a docstring sentence is from.

Each example is one sentence of the builtin corpus (the standard library's
docstrings, `bert_jax.data.pretrain.corpora`); its label is the group of modules it
comes from, e.g. ``concurrency`` (asyncio, threading, multiprocessing, ...) or
``email`` (email, smtplib, imaplib, ...). Nothing is downloaded: the text is
read from the running interpreter, so the data depend on the Python version
(CPython 3.11 here) and on nothing else.

The split is deterministic and stable: within each class, sentences are
ordered by a keyed hash of their text (``seed``), and dev, test and train take
consecutive runs of that order, so a sentence's split does not depend on file
order, and every split is balanced over the classes. A sentence found in two
groups is dropped (its label would be ambiguous); doctest lines and sentences
under ``min_words`` words are left out.

Python::

    from bert_jax.data.finetune import builtin_topics
    data = builtin_topics.make_splits(num_classes=6, train=3000, dev=1000)
    data.train[0]         # TopicExample(sentence='...', label='email')
    builtin_topics.write_splits('/tmp/topics', data)  # train.tsv, dev.tsv

Shell (the files ``configs/finetune.py:task=local_classification`` reads with
``data.text_fields=sentence``, ``data.label_field=label``)::

    python -m bert_jax.data.finetune.builtin_topics --out /tmp/topics \\
        --classes 6 --train 3000 --dev 1000 [--test 500] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import dataclasses
import hashlib
import os
from typing import NamedTuple

from bert_jax.data.pretrain import corpora

# Topic -> the top-level standard-library modules it is made of. Groups of
# related modules, so each class has enough sentences and a human could tell
# them apart; modules of no clear topic (builtins, posix, collections, ...)
# are in none.
GROUPS: dict[str, tuple[str, ...]] = {
    'web': ('http', 'urllib', 'wsgiref', 'xmlrpc', 'ftplib', 'socketserver',
            'cgi', 'cgitb', 'telnetlib', 'webbrowser', 'ssl', 'socket'),
    'concurrency': ('asyncio', 'multiprocessing', 'threading', 'concurrent',
                    'subprocess', 'queue', 'sched', 'selectors', 'select',
                    'signal'),
    'introspection': ('typing', 'inspect', 'ast', 'importlib', 'dis',
                      'symtable', 'tokenize', 'pkgutil', 'pyclbr', 'code',
                      'codeop', 'zipimport', 'types', 'abc', 'dataclasses',
                      'runpy', 'py_compile', 'compileall'),
    'email': ('email', 'smtplib', 'imaplib', 'poplib', 'mailbox', 'smtpd',
              'mimetypes', 'nntplib', 'quopri', 'mailcap'),
    'testing': ('unittest', 'doctest', 'pdb', 'bdb', 'traceback', 'timeit',
                'trace', 'profile', 'cProfile', 'pstats', 'faulthandler',
                'tracemalloc'),
    'files': ('os', 'shutil', 'tarfile', 'zipfile', 'pathlib', 'tempfile',
              'bz2', 'lzma', 'gzip', 'zlib', 'fileinput', 'glob', 'fnmatch',
              'filecmp', 'shelve', 'dbm', 'sqlite3', 'csv', 'io', 'posixpath',
              'genericpath'),
    'numbers': ('decimal', 'statistics', 'math', 'cmath', 'random',
                'fractions', 'numbers', 'datetime', 'calendar', 'time'),
    'text': ('difflib', 'codecs', 're', 'textwrap', 'string', 'unicodedata',
             'base64', 'binascii'),
    'markup': ('xml', 'html', 'pyexpat', 'plistlib'),
    'logging': ('logging', 'warnings'),
}
SPLITS = ('train', 'dev', 'test')
HEADER = ('sentence', 'label')


class TopicExample(NamedTuple):
  sentence: str
  label: str


@dataclasses.dataclass
class TopicData:
  """The splits (each balanced over the classes) and the class names."""
  train: list[TopicExample]
  dev: list[TopicExample]
  test: list[TopicExample]
  label_names: tuple[str, ...]


def topic_sentences(min_words: int = 4) -> dict[str, list[str]]:
  """Topic -> its distinct sentences, for every topic of ``GROUPS``.

  Args:
    min_words: Shorter sentences are left out.

  Returns:
    The sentences of each topic in corpus order, without duplicates and
    without any sentence that occurs in two topics.
  """
  of_module = {m: t for t, mods in GROUPS.items() for m in mods}
  found: dict[str, dict[str, None]] = {t: {} for t in GROUPS}
  for name, doc in corpora.builtin_module_documents():
    topic = of_module.get(name.split('.')[0])
    if topic is None:
      continue
    for s in doc:
      # Doctest lines are code, not prose about the topic.
      if len(s.split()) >= min_words and not s.startswith(('>>>', '...')):
        found[topic][s] = None
  owners: dict[str, int] = {}
  for sents in found.values():
    for s in sents:
      owners[s] = owners.get(s, 0) + 1
  return {t: [s for s in sents if owners[s] == 1] for t, sents in found.items()}


def _shares(total: int, k: int) -> list[int]:
  """TOTAL split over K classes as evenly as possible (earlier ones +1)."""
  return [total // k + (i < total % k) for i in range(k)]


def _hash_order(items: Sequence[str], seed: int) -> list[str]:
  key = str(seed).encode()
  return sorted(items, key=lambda s: hashlib.blake2b(
      s.encode(), digest_size=8, key=key).digest())


def make_splits(num_classes: int = 6, train: int = 3000, dev: int = 1000,
                test: int = 0, seed: int = 0, min_words: int = 4) -> TopicData:
  """Balanced train/dev/test splits over the NUM_CLASSES largest topics.

  Args:
    num_classes: How many topics (the largest by sentence count, ties by
      name), 2 to ``len(GROUPS)``.
    train: Training examples in all (spread evenly over the classes).
    dev: Development (evaluation) examples in all.
    test: Test examples in all (0 = no test split).
    seed: Changes which sentences go to which split.
    min_words: Shorter sentences are left out.

  Returns:
    A ``TopicData``; each split's examples are in a seeded hash order (classes
    interleaved), label names sorted.

  Raises:
    ValueError: On a bad count, or when a class has too few sentences (the
      message names it and how many it has).
  """
  if not 2 <= num_classes <= len(GROUPS):
    raise ValueError(f'num_classes={num_classes}: choose 2 to {len(GROUPS)} '
                     f'(the topics are {sorted(GROUPS)}).')
  if train < 0 or dev < 0 or test < 0 or train + dev + test == 0:
    raise ValueError(f'train={train}, dev={dev}, test={test}: counts must be '
                     '>= 0 and not all 0.')
  by_topic = topic_sentences(min_words)
  chosen = sorted(by_topic, key=lambda t: (-len(by_topic[t]), t))[:num_classes]
  labels = tuple(sorted(chosen))
  counts = {name: dict(zip(labels, _shares(n, num_classes)))
            for name, n in (('train', train), ('dev', dev), ('test', test))}
  out = {name: [] for name in SPLITS}
  for label in labels:
    sents = _hash_order(by_topic[label], seed)
    need = sum(counts[s][label] for s in SPLITS)
    if need > len(sents):
      raise ValueError(
          f'topic {label!r} has {len(sents)} sentences of >= {min_words} '
          f'words; train={train}, dev={dev}, test={test} over {num_classes} '
          f'classes need {need}. Ask for fewer examples or classes.')
    start = 0
    for split in ('dev', 'test', 'train'):  # dev first: stable as train grows.
      n = counts[split][label]
      out[split].extend(TopicExample(s, label) for s in sents[start:start + n])
      start += n
  for split in SPLITS:
    order = _hash_order([e.sentence for e in out[split]], seed + 1)
    label_of = {e.sentence: e.label for e in out[split]}
    out[split] = [TopicExample(s, label_of[s]) for s in order]
  return TopicData(out['train'], out['dev'], out['test'], labels)


def write_tsv(path: str, examples: Sequence[TopicExample]) -> None:
  """EXAMPLES as a ``sentence<TAB>label`` TSV with a header row."""
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\t'.join(HEADER) + '\n')
    for e in examples:
      if '\t' in e.sentence or '\n' in e.sentence:
        raise ValueError(f'{path}: sentence {e.sentence!r} has a tab or a '
                         'newline; TSV cannot hold it.')
      f.write(f'{e.sentence}\t{e.label}\n')


def write_splits(out_dir: str, data: TopicData) -> dict[str, str]:
  """Writes OUT_DIR/{train,dev[,test]}.tsv; returns split -> path."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {}
  for split in SPLITS:
    examples = getattr(data, split)
    if examples or split != 'test':
      paths[split] = os.path.join(out_dir, f'{split}.tsv')
      write_tsv(paths[split], examples)
  return paths


def main(argv: Sequence[str] | None = None) -> dict[str, str]:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.data.finetune.builtin_topics',
      description='Write the builtin sentence-topic task as TSV files.')
  parser.add_argument('--out', required=True, help='Output directory.')
  parser.add_argument('--classes', type=int, default=6,
                      help='Number of topics (the largest ones).')
  parser.add_argument('--train', type=int, default=3000,
                      help='Training sentences in all.')
  parser.add_argument('--dev', type=int, default=1000,
                      help='Development sentences in all.')
  parser.add_argument('--test', type=int, default=0,
                      help='Test sentences in all (0 = no test.tsv).')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--min_words', type=int, default=4)
  args = parser.parse_args(argv)
  data = make_splits(args.classes, args.train, args.dev, args.test, args.seed,
                     args.min_words)
  paths = write_splits(args.out, data)
  for split, path in paths.items():
    print(f'{path}: {len(getattr(data, split))} sentences')
  print('classes: ' + ', '.join(data.label_names))
  return paths


if __name__ == '__main__':
  main()
