"""Tests of bert_jax.data.pretrain.corpora."""

import os
import time

import pytest

from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import inputs as pretrain_inputs
from bert_jax.errors import UserInputError
from configs import pretrain as pretrain_config


def test_split_sentences_prose_code_and_fragments():
  text = ('Heading\n*******\n\n'
          'The first sentence is here. The second one\nruns over a line! '
          'and this is not a new one? No, it is not.\n\n'
          'Use it like this:\n\n'
          '   for x in range(3):\n'
          '       print(x)  # two lines\n\n'
          '* an item in a list\n* another item here\n\n'
          '>>> f(1)\n'
          'ok.\n')
  assert corpora.split_sentences(text) == [
      'The first sentence is here.',
      'The second one runs over a line! and this is not a new one?',
      'No, it is not.',
      'Use it like this:',
      'for x in range(3):',
      'print(x) # two lines',
      'an item in a list',
      'another item here',
      '>>> f(1)',
  ]  # 'Heading' and 'ok.' are one-word fragments; the underline is no text.


def test_builtin_corpus_is_big_clean_deterministic_and_fast():
  start = time.perf_counter()
  docs = list(corpora.load_corpus('builtin'))
  seconds = time.perf_counter() - start
  assert seconds < 10, f'builtin corpus took {seconds:.1f} s'
  words = sum(len(s.split()) for d in docs for s in d)
  assert len(docs) > 250
  assert 150_000 < words < 500_000, words
  assert all(d for d in docs)
  assert all(s and s == s.strip() for d in docs for s in d)
  assert list(corpora.load_corpus('builtin', max_documents=5)) == docs[:5]
  assert list(corpora.load_corpus('builtin')) == docs


def test_file_corpus(tiny_corpus_path, tmp_path):
  docs = list(corpora.load_corpus(tiny_corpus_path))
  assert len(docs) == 24
  assert docs[0][0] == 'The cat sat on the warm mat by the door.'
  assert all(3 <= len(d) <= 4 for d in docs)
  (tmp_path / 'b.txt').write_text('One more line.\n\n\nLast doc, no newline')
  (tmp_path / 'a.txt').write_text('\nFirst line.\nSecond line.\n')
  assert list(corpora.load_corpus(str(tmp_path / '*.txt'))) == [
      ['First line.', 'Second line.'], ['One more line.'],
      ['Last doc, no newline']]
  both = f'{tiny_corpus_path}, {tmp_path / "a.txt"}'
  assert len(list(corpora.load_corpus(both))) == 25
  assert len(list(corpora.load_corpus(tiny_corpus_path, max_documents=3))) == 3


def test_missing_files_and_bad_specs_fail_loudly(tmp_path):
  missing = str(tmp_path / 'nope.txt')
  with pytest.raises(FileNotFoundError, match='nope.txt'):
    list(corpora.load_corpus(missing))
  with pytest.raises(FileNotFoundError, match=r'\*\.json'):
    list(corpora.load_corpus(str(tmp_path / '*.json')))
  for spec in ('', 'hf:wikipedia', 'http://example.com/x.txt'):
    with pytest.raises(ValueError, match='valid forms.*builtin.*tfds:NAME'):
      list(corpora.load_corpus(spec))
  with pytest.raises(ValueError, match='tfds:NAME'):
    list(corpora.load_corpus('tfds:'))


def test_tfds_corpus_through_data_source():
  tfds = pytest.importorskip('tensorflow_datasets')
  records = [{'text': b'First article. It has Two sentences.', 'title': b'a'},
             {'text': 'Second article is here.\n\nNew paragraph too.',
              'title': 'b'},
             {'text': 'x', 'title': 'c'}]  # No sentence left: skipped.
  seen = {}

  def as_data_source(self, split, **kwargs):
    del kwargs
    seen['name'], seen['split'] = self.name, split
    return records

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    docs = list(corpora.load_corpus('tfds:wikipedia/20230601.en:train[:2%]'))
    assert seen == {'name': 'wikipedia', 'split': 'train[:2%]'}
    assert docs == [['First article.', 'It has Two sentences.'],
                    ['Second article is here.', 'New paragraph too.']]
    with pytest.raises(KeyError, match="'body'.*'text', 'title'"):
      list(corpora.load_corpus('tfds:wikipedia/20230601.en', text_key='body'))


def test_tfds_corpus_with_generated_mock_data():
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=4):
    docs = list(corpora.load_corpus('tfds:c4/en:validation'))
  assert 0 < len(docs) <= 4
  assert all(s.strip() == s and s for d in docs for s in d)


def test_split_documents_is_stable_and_disjoint(tiny_corpus_path):
  docs = list(corpora.load_corpus(tiny_corpus_path))
  train, held_out = corpora.split_documents(docs, 0.25, seed=1)
  assert len(train) + len(held_out) == len(docs)
  assert 1 <= len(held_out) <= 12
  assert not {tuple(d) for d in train} & {tuple(d) for d in held_out}
  # The same documents are held out whatever the order or the company.
  _, held_out_reversed = corpora.split_documents(docs[::-1], 0.25, seed=1)
  assert sorted(held_out_reversed) == sorted(held_out)
  _, held_out_alone = corpora.split_documents(held_out, 0.25, seed=1)
  assert held_out_alone == held_out
  assert corpora.split_documents(docs, 0.25, seed=2) != (train, held_out)
  assert corpora.split_documents(docs, 0.0) == (docs, [])
  with pytest.raises(ValueError, match='eval_fraction'):
    corpora.split_documents(docs, 1.0)


def test_an_eval_fraction_that_holds_out_nothing_is_an_error(tiny_corpus_path,
                                                            tmp_path):
  docs = list(corpora.load_corpus(tiny_corpus_path))
  with pytest.raises(UserInputError, match=r'^eval_fraction=1e-06 held out '
                     r'none of the 24 documents .* 0\.125 or more'):
    corpora.split_documents(docs, 1e-6)
  # The run's own field, before any tokenizer is trained.
  data = pretrain_config.get_config('size=tiny,runlocal').data
  data.update(corpus=tiny_corpus_path, eval_fraction=1e-6)
  with pytest.raises(UserInputError, match=r'data\.eval_fraction=1e-06 held '
                     'out none'):
    pretrain_inputs.build(data, str(tmp_path / 'w'), seed=0)
  assert not os.path.exists(tmp_path / 'w' / 'tokenizer')
  # 0 asks for no evaluation: no error.
  assert corpora.split_documents(docs, 0.0)[1] == []


def test_fixture_is_in_bert_format(tiny_corpus_path):
  with open(tiny_corpus_path) as f:
    text = f.read()
  assert text.endswith('\n') and '\n\n\n' not in text
  assert os.path.getsize(tiny_corpus_path) < 10_000
