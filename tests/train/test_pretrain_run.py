"""End-to-end pretraining runs: launch path, resume, preemption, NaN stop."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bert_jax.train import trainer
from tests.train import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _launch(workdir, *overrides, env=None, timeout=300):
  cmd = [sys.executable, os.path.join(ROOT, 'launch.py'),
         '--config=' + os.path.join(ROOT, 'configs', 'pretrain.py') +
         ':size=tiny,runlocal', f'--workdir={workdir}', *overrides]
  full_env = dict(os.environ, **(env or {}))
  return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                        cwd=ROOT, env=full_env)


TINY = ['--config.model.hidden_size=64', '--config.model.num_heads=2',
        '--config.model.intermediate_size=128', '--config.data.max_seq_length=32',
        '--config.data.max_predictions_per_seq=5', '--config.data.dupe_factor=1',
        '--config.data.tokenizer_vocab_size=500', '--config.train.global_batch_size=16',
        '--config.train.num_steps=4', '--config.train.log_every_steps=2',
        '--config.train.eval_every_steps=4', '--config.train.eval_batches=1',
        '--config.ckpt.every_steps=2', '--config.optim.warmup_steps=1']


def _records(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


@pytest.mark.parametrize('corpus', ['builtin', 'fixture'])
def test_launch_runs_and_writes_everything(tmp_path, corpus):
  spec = 'builtin' if corpus == 'builtin' else helpers.FIXTURE
  extra = ['--config.data.max_documents=80', '--config.data.eval_fraction=0.1'
           ] if corpus == 'builtin' else ['--config.data.eval_fraction=0.2']
  r = _launch(tmp_path, *TINY, f'--config.data.corpus={spec}', *extra,
              '--config.train.peak_tflops=1.0')
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'step 4/4' in r.stdout and '| MFU ' in r.stdout
  assert 'backend cpu' in r.stdout
  # INFO lines of absl and orbax stay off the console by default.
  assert not any(line.startswith('I1') for line in r.stderr.splitlines())
  recs = _records(tmp_path)
  train = [x for x in recs if x['split'] == 'train']
  evals = [x for x in recs if x['split'] == 'eval']
  assert [x['step'] for x in train] == [2, 4]
  for key in ('loss', 'mlm_loss', 'mlm_accuracy', 'nsp_accuracy',
              'learning_rate', 'grad_norm', 'tokens_per_sec',
              'padding_fraction', 'mfu'):
    assert key in train[-1], key
  # Packed rows (the default): little padding.
  assert 0.0 <= train[-1]['padding_fraction'] < 0.1
  with open(tmp_path / 'config.json') as f:
    assert json.load(f)['logical_axis_rules'][0] == ['batch', ['data', 'fsdp']]
  assert evals and 'mlm_accuracy' in evals[-1]
  for name in ('config.json', 'model_config.json', 'tokenizer', 'tb',
               'eval_results.json', 'checkpoints'):
    assert os.path.exists(tmp_path / name), name
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2', '4']


def test_bad_values_fail_before_compiling(tmp_path):
  r = _launch(tmp_path, '--config.train.global_batch_size=12')
  assert r.returncode != 0
  assert 'global_batch_size=12 is not divisible by the data-parallel size' in r.stderr
  r = _launch(tmp_path, '--config.data.max_seq_length=1024')
  assert 'max_seq_length=1024 exceeds model.max_position_embeddings=512' in r.stderr
  r = _launch(tmp_path, '--config.train.no_such_field=3')
  assert r.returncode != 0 and 'no_such_field' in r.stderr
  r = subprocess.run(
      [sys.executable, 'launch.py', '--config=configs/pretrain.py:size=huge',
       f'--workdir={tmp_path}'], capture_output=True, text=True, cwd=ROOT)
  assert "choose one of ('tiny', 'mini', 'small', 'medium', 'base', 'large')" in r.stderr
  r = subprocess.run(
      [sys.executable, 'launch.py', '--config=configs/pretrain.py:objective=mlm_xyz',
       f'--workdir={tmp_path}'], capture_output=True, text=True, cwd=ROOT)
  assert "choose one of ('mlm', 'mlm_nsp', 'mlm_sop')" in r.stderr
  r = _launch(tmp_path, '--config.model.norm_type=batchnorm')
  assert "model.norm_type='batchnorm' is not valid" in r.stderr


def test_stop_and_resume_equals_uninterrupted(tmp_path):
  straight = trainer.run(helpers.tiny_config(), str(tmp_path / 'a'))
  first = trainer.run(helpers.tiny_config(stop_after_steps=3), str(tmp_path / 'b'))
  assert first['step'] == 3
  resumed = trainer.run(helpers.tiny_config(), str(tmp_path / 'b'))
  assert resumed['step'] == 6
  for a, b in zip(helpers.flat(straight['state'].params),
                  helpers.flat(resumed['state'].params)):
    np.testing.assert_array_equal(a, b)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = helpers.tiny_config(num_steps=8)
  config.optim.learning_rate = 1e30  # Diverges within a few steps.
  config.optim.grad_clip_norm = 0.0
  config.ckpt.every_steps = 1
  with pytest.raises(FloatingPointError, match=r'Loss is (nan|inf) at step \d+'):
    trainer.run(config, str(tmp_path))
  steps = sorted(int(s) for s in os.listdir(tmp_path / 'checkpoints'))
  recs = [x for x in _records(tmp_path) if x['split'] == 'train']
  assert all(np.isfinite(x['loss']) for x in recs)
  # Every kept checkpoint precedes the failure: none has a NaN state.
  from bert_jax import pretrained  # pylint: disable=g-import-not-at-top
  params = pretrained.load_params(str(tmp_path))
  assert all(np.all(np.isfinite(x)) for x in helpers.flat(params))
  assert steps


def test_sigterm_saves_and_exits_cleanly(tmp_path):
  proc = subprocess.Popen(
      [sys.executable, 'launch.py',
       '--config=configs/pretrain.py:size=tiny,runlocal', f'--workdir={tmp_path}',
       *TINY[:-6], '--config.train.num_steps=100000',
       '--config.train.log_every_steps=1', '--config.data.max_documents=60',
       '--config.ckpt.every_steps=100000'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  import signal  # pylint: disable=g-import-not-at-top
  for line in proc.stdout:
    if line.startswith('step 3/'):
      proc.send_signal(signal.SIGTERM)
      break
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 0, out[-2000:]
  assert 'Stopped by SIGTERM' in out
  steps = os.listdir(tmp_path / 'checkpoints')
  assert len(steps) == 1 and int(steps[0]) >= 3


def test_prepared_shards_train_from_disk(tmp_path):
  from bert_jax.data.pretrain import prepare  # pylint: disable=g-import-not-at-top
  from bert_jax.text.train_tokenizer import train_tokenizer  # pylint: disable=g-import-not-at-top
  from bert_jax.data.pretrain import corpora  # pylint: disable=g-import-not-at-top
  docs = list(corpora.load_corpus(helpers.FIXTURE))
  tok_dir = str(tmp_path / 'tok')
  train_tokenizer('wordpiece', (s for d in docs for s in d), 500, tok_dir)
  prepare.main(['--corpus', helpers.FIXTURE, '--tokenizer', tok_dir,
                '--out', str(tmp_path / 'shards'), '--max_seq_length', '32',
                '--objective', 'mlm_nsp', '--dupe_factor', '3',
                '--eval_fraction', '0.3'])
  config = helpers.tiny_config(num_steps=3)
  config.data.prepared_dir = str(tmp_path / 'shards')
  config.data.tokenizer = tok_dir
  result = trainer.run(config, str(tmp_path / 'run'))
  assert result['step'] == 3 and result['eval']
  config.data.max_seq_length = 64
  with pytest.raises(ValueError, match='prepared with 32'):
    trainer.run(config, str(tmp_path / 'run2'))


def test_pretraining_workdir_inits_finetuning_and_encode(tmp_path):
  """A workdir is a checkpoint dir: fine-tuning (here from an 'mlm' run, which
  has no pooler: it starts fresh) and encode both read it."""
  from bert_jax.encode import load_encoder  # pylint: disable=g-import-not-at-top
  from bert_jax.configs import finetune  # pylint: disable=g-import-not-at-top
  pre = trainer.run(helpers.tiny_config('mlm', num_steps=2), str(tmp_path / 'pre'))
  fix = os.path.join(ROOT, 'tests', 'tasks', 'fixtures')
  config = finetune.get_config('task=local_classification,runlocal')
  config.init_from = str(tmp_path / 'pre')
  config.data.train_file = os.path.join(fix, 'cls_train.tsv')
  config.data.eval_file = os.path.join(fix, 'cls_eval.tsv')
  config.data.max_seq_length = 32
  config.train.num_steps = 2
  config.ckpt.async_save = False
  ft = trainer.run(config, str(tmp_path / 'ft'))
  # The encoder really came from the pretraining run (before its update).
  pre_emb = pre['state'].params['bert']['embeddings']['word_embeddings']['embedding']
  ft_emb = ft['state'].params['bert']['embeddings']['word_embeddings']['embedding']
  assert np.abs(np.asarray(pre_emb) - np.asarray(ft_emb)).max() < 1e-2
  assert 'pooler' in ft['state'].params['bert']
  out = load_encoder(str(tmp_path / 'pre'))(['a short text'])
  assert out['last_hidden_state'].shape[-1] == 64
