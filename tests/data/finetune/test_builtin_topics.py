"""The built-in sentence-topic task: balanced, disjoint, stable splits."""

import collections
import os

import pytest

from bert_jax.data.finetune import builtin_topics
from bert_jax.data.finetune import local_files


def test_splits_are_balanced_disjoint_and_deterministic():
  data = builtin_topics.make_splits(num_classes=3, train=60, dev=30, test=12)
  again = builtin_topics.make_splits(num_classes=3, train=60, dev=30, test=12)
  assert data == again
  sizes = {k: len(v) for k, v in builtin_topics.topic_sentences().items()}
  # The largest three topics (ties by name), names sorted.
  assert list(data.label_names) == sorted(sorted(
      sizes, key=lambda t: (-sizes[t], t))[:3])
  for split, n in (('train', 60), ('dev', 30), ('test', 12)):
    counts = collections.Counter(e.label for e in getattr(data, split))
    assert counts == {label: n // 3 for label in data.label_names}, split
  sents = [set(e.sentence for e in getattr(data, s)) for s in builtin_topics.SPLITS]
  assert sum(map(len, sents)) == 102  # No duplicates, no overlap.
  assert all(len(e.sentence.split()) >= 4 for e in data.train)
  # Dev is taken first: a larger train split keeps the same dev sentences.
  bigger = builtin_topics.make_splits(num_classes=3, train=90, dev=30, test=12)
  assert bigger.dev == data.dev
  other_seed = builtin_topics.make_splits(num_classes=3, train=60, dev=30,
                                          seed=1)
  assert other_seed.dev != data.dev


def test_each_sentence_has_one_topic():
  by_topic = builtin_topics.topic_sentences()
  assert set(by_topic) == set(builtin_topics.GROUPS)
  owners = collections.Counter(s for v in by_topic.values() for s in v)
  assert max(owners.values()) == 1
  # Enough for the benchmark's 3,000 / 1,000 over 6 classes.
  assert sorted(map(len, by_topic.values()))[-6] >= 4000 // 6


def test_cli_writes_tsv_the_reader_loads(tmp_path):
  paths = builtin_topics.main(['--out', str(tmp_path), '--classes', '4',
                               '--train', '40', '--dev', '20'])
  assert sorted(paths) == ['dev', 'train']
  assert not os.path.exists(tmp_path / 'test.tsv')
  data = local_files.load(paths['train'], paths['dev'], 'sentence', 'label',
                          regression=False)
  assert len(data.train) == 40 and len(data.eval) == 20
  assert len(data.label_names) == 4


def test_errors_name_the_problem():
  with pytest.raises(ValueError, match='has .* sentences'):
    builtin_topics.make_splits(num_classes=2, train=100_000, dev=10)
  with pytest.raises(ValueError, match='num_classes=1'):
    builtin_topics.make_splits(num_classes=1)
