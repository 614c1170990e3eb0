"""The 4-topic fixture behind docs/finetuning.md's offline result.

experiments/scripts/finetune_topics.sh fine-tunes on topics_train.tsv and reports
accuracy on topics_eval.tsv; that figure means something only if the held-out
file is really held out and the classes are balanced. No training here.
"""

import collections
import csv
import os
import re

import pytest

from bert_jax.data.finetune import local_files

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
TRAIN = os.path.join(FIXTURES, 'topics_train.tsv')
EVAL = os.path.join(FIXTURES, 'topics_eval.tsv')
LABELS = ('food', 'sports', 'technology', 'weather')
PER_CLASS = {TRAIN: 60, EVAL: 25}


def _rows(path):
  # As local_files reads TSV: no quoting, tab-separated, header first.
  with open(path, encoding='utf-8', newline='') as f:
    rows = list(csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE))
  return rows[0], rows[1:]


def _norm(sentence):
  # Case, punctuation and spacing differences do not make a sentence new.
  return ' '.join(re.sub(r'[^a-z0-9 ]+', ' ', sentence.lower()).split())


@pytest.mark.parametrize('path', [TRAIN, EVAL])
def test_shape_header_and_balance(path):
  header, rows = _rows(path)
  assert header == ['sentence', 'label']
  for i, row in enumerate(rows, start=2):
    # Exactly two fields also means no tab inside a sentence.
    assert len(row) == 2, f'{path}:{i}: {row!r}'
    sentence, label = row
    assert sentence == sentence.strip() and sentence, f'{path}:{i}'
    assert 5 <= len(sentence.split()) <= 30, f'{path}:{i}: {sentence!r}'
    assert label in LABELS, f'{path}:{i}: {label!r}'
  counts = collections.Counter(label for _, label in rows)
  assert counts == {label: PER_CLASS[path] for label in LABELS}


@pytest.mark.parametrize('path', [TRAIN, EVAL])
def test_no_duplicates_within_a_file(path):
  _, rows = _rows(path)
  seen = collections.Counter(_norm(s) for s, _ in rows)
  assert [s for s, n in seen.items() if n > 1] == []


def test_held_out_is_disjoint_from_train():
  _, train = _rows(TRAIN)
  _, held_out = _rows(EVAL)
  train_norm = {_norm(s) for s, _ in train}
  assert [s for s, _ in held_out if _norm(s) in train_norm] == []
  # No near-copies either: word-set overlap with any training sentence stays
  # well below a paraphrase's.
  words = lambda s: set(_norm(s).split())
  train_words = [words(s) for s, _ in train]
  for s, _ in held_out:
    w = words(s)
    closest = max(len(w & t) / len(w | t) for t in train_words)
    assert closest < 0.5, f'{s!r} is too close to a training sentence'


def test_project_reader_agrees():
  data = local_files.load(TRAIN, EVAL, 'sentence', 'label', regression=False)
  assert data.label_names == LABELS
  assert (len(data.train), len(data.eval)) == (240, 100)
