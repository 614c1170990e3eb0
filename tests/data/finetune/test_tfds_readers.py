"""The TFDS readers (GLUE, CoNLL-2003, SQuAD) and their one helper.

All offline: `tfds.testing.mock_data` stands in for prepared datasets.
"""

import numpy as np
import pytest

from bert_jax.data.finetune import conll
from bert_jax.data.finetune import glue
from bert_jax.data.finetune import squad_readers
from bert_jax.data import tfds_source

tfds = pytest.importorskip('tensorflow_datasets')

N = 6  # Records in every mocked split.


def _conll_records(split):
  del split
  names = conll.CONLL2003_NER_LABELS
  return [{'tokens': np.array([b'EU', b'rejects', f'w{i}'.encode()], object),
           'ner': np.array([names.index('B-ORG'), 0, 0], np.int64),
           'pos': np.zeros(3, np.int64), 'chunks': np.zeros(3, np.int64)}
          for i in range(N)]


def _squad_records(split):
  del split
  return [{'id': f'q{i}'.encode(), 'title': b't', 'context': b'a b c',
           'question': b'where?',
           'answers': {'text': np.array([b'b'], object),
                       'answer_start': np.array([2], np.int32)}}
          for i in range(N)]


def _mock(records_fn):
  def as_data_source(self, split, **unused):
    del self, unused
    return records_fn(split)
  return tfds.testing.mock_data(as_data_source_fn=as_data_source)


def _glue_mock():
  # USE_CODE: records generated from the builder's features, no metadata.
  return tfds.testing.mock_data(num_examples=N,
                                policy=tfds.testing.MockPolicy.USE_CODE)


# Each reader as `read(split, data_dir, max_examples) -> list`, with its mock.
READERS = {
    'glue': (lambda split, data_dir, n: glue.load_examples(
        'mrpc', split, data_dir, n), _glue_mock, 'glue/mrpc'),
    'conll': (lambda split, data_dir, n: conll.load_conll2003(
        split, data_dir, n)[0], lambda: _mock(_conll_records), 'conll2003'),
    'squad': (lambda split, data_dir, n: squad_readers.load_tfds(
        'squad/v1.1', split, data_dir, n), lambda: _mock(_squad_records),
              'squad/v1.1'),
}


@pytest.mark.parametrize('reader', sorted(READERS))
def test_max_examples_convention(reader):
  read, mock, _ = READERS[reader]
  with mock():
    assert len(read('train', None, 0)) == N
    assert len(read('train', '', None)) == N
    assert len(read('train', None, 2)) == 2
    assert len(read('train', None, N + 5)) == N
    with pytest.raises(ValueError, match=r'max_examples=-1.*0 \(or None\)'):
      read('train', None, -1)


@pytest.mark.parametrize('reader', sorted(READERS))
def test_a_split_that_fails_to_open_says_how_to_prepare_it(reader, tmp_path):
  read, _, name = READERS[reader]

  def as_data_source(self, split, **unused):
    del self, unused
    raise ValueError(f'Unknown split "{split}"')

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    with pytest.raises(RuntimeError) as e:
      read('nope', str(tmp_path), 0)
  message = str(e.value)
  for part in (f"TFDS dataset '{name}' split 'nope'", f'data_dir={tmp_path}',
               'ValueError: Unknown split "nope"',
               f'tfds build {name} --file_format=array_record '
               f'--data_dir={tmp_path}',
               f"tfds.builder('{name}', data_dir='{tmp_path}')"
               ".download_and_prepare(file_format='array_record')"):
    assert part in message, (part, message)


def test_an_unknown_dataset_names_the_h5py_pitfall():
  for call in (lambda: tfds_source.open_split('no_such_dataset_x', 'train'),
               lambda: tfds_source.builder('no_such_dataset_x')):
    with pytest.raises(RuntimeError,
                       match=r"'no_such_dataset_x'.*no builder.*h5py"):
      call()


def test_check_max_examples():
  assert tfds_source.check_max_examples(0) == 0
  assert tfds_source.check_max_examples(None) == 0
  assert tfds_source.check_max_examples(np.int64(3)) == 3
  for bad in (-1, 1.5, True, '3'):
    with pytest.raises(ValueError, match='max_examples'):
      tfds_source.check_max_examples(bad)


def test_records_are_read_in_order():
  with _mock(_squad_records):
    ids = [r['id'] for r in tfds_source.read_records('squad/v1.1', 'train',
                                                     max_examples=4)]
  assert ids == [b'q0', b'q1', b'q2', b'q3']


def test_glue_task_table():
  assert glue.TASKS == ('cola', 'sst2', 'mrpc', 'qqp', 'stsb', 'mnli', 'qnli',
                        'rte', 'wnli')
  for table in (glue.TEXT_FIELDS, glue.LABEL_NAMES, glue.EVAL_SPLITS):
    assert tuple(table) == glue.TASKS
  assert [glue.submission_file_name(t, 'test') for t in glue.TASKS] == [
      'CoLA.tsv', 'SST-2.tsv', 'MRPC.tsv', 'QQP.tsv', 'STS-B.tsv',
      'MNLI-m.tsv', 'QNLI.tsv', 'RTE.tsv', 'WNLI.tsv']
  with pytest.raises(ValueError, match="'sst'.*choose one of"):
    glue.load_examples('sst', 'train')


def test_as_text_takes_what_sources_and_mocks_give():
  for value in (b'caf\xc3\xa9', np.array(b'caf\xc3\xa9', object), 'café',
                np.array('café')):
    assert tfds_source.as_text(value) == 'café'
