"""The three studies of docs/findings.md (issue 24), end to end at tiny size:
each study file's own variants, recipe and evaluation lengths, shrunk to a few
steps, run through ``python -m bert_jax.lab.study`` with every trial trained
in this process (a stand-in for the ``launch.py`` subprocess: the same config
spec and overrides, without a Python start and jax import per trial). Also
checks that every variant takes effect (issue 24, goal 3): the norm placement
and warm-up in the logged learning rate, the length of each evaluation,
modern's 30% masking not capped by the study's recipe."""

import json
import os
import subprocess

import pytest

from bert_jax.lab import study
from bert_jax.lab import sweep
from bert_jax.lab import trials
from bert_jax.train import trainer

STUDIES = os.path.join(trials.REPO, 'experiments', 'studies')

# Shrinks a study file's recipe (appended to a copy of it).
_TINY = """
PRETRAIN.update({'train.num_steps': 4, 'train.eval_every_steps': 4,
                 'train.log_every_steps': 1, 'ckpt.every_steps': 4,
                 'data.tokenizer_vocab_size': 400, 'data.max_documents': 40,
                 'data.dupe_factor': 1, 'train.global_batch_size': 8,
                 'train.eval_batches': 2, 'model.hidden_size': 32, 'model.num_heads': 2,
                 'model.intermediate_size': 64, 'model.num_layers': 1,
                 'ckpt.async_save': False})
"""


def _in_process(calls):
  def run(cmd, cwd, stdout, **kw):
    del cwd, kw
    spec = next(a.split('=', 1)[1] for a in cmd if a.startswith('--config='))
    workdir = next(a.split('=', 1)[1] for a in cmd if a.startswith('--workdir='))
    flags = dict(a[len('--config.'):].split('=', 1) for a in cmd
                 if a.startswith('--config.'))
    config = sweep.base_config(spec)
    for key, text in flags.items():
      *groups, field = key.split('.')
      node = config
      for g in groups:
        node = node[g]
      node[field] = sweep._coerce(text, node[field])  # pylint: disable=protected-access
    calls.append((os.path.basename(os.path.dirname(workdir)),
                  os.path.basename(workdir), flags))
    try:
      trainer.run(config, workdir)
    except Exception as e:  # pylint: disable=broad-except
      stdout.write(f'{type(e).__name__}: {e}\n'.encode() if 'b' in getattr(
          stdout, 'mode', '') else f'{type(e).__name__}: {e}\n')
      return subprocess.CompletedProcess(cmd, 1)
    return subprocess.CompletedProcess(cmd, 0)
  return run


def _study(tmp_path, name, extra=''):
  path = tmp_path / f'{name}.py'
  path.write_text(open(os.path.join(STUDIES, f'{name}.py')).read() + _TINY + extra)
  return str(path)


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [json.loads(l) for l in f if l.strip()]


@pytest.fixture
def in_process(monkeypatch):
  calls = []
  monkeypatch.setattr(trials.subprocess, 'run', _in_process(calls))
  return calls


def test_ln_warmup_study(tmp_path, in_process):
  spec = _study(tmp_path, 'ln_warmup',
                "ONLY = ('post_nowarmup_lr0.002', 'pre_warmup_lr0.002')\n"
                "WARMUP_STEPS = 3\nPRETRAIN['optim.warmup_steps'] = 3\n")
  root = tmp_path / 'r'
  assert study.main(['--study', spec, '--root', str(root), '--seeds', '1']) == 0
  pre = root / 'pretrain'
  post_cfg = json.load(open(pre / 'post_nowarmup_lr0.002' / 'model_config.json'))
  pre_cfg = json.load(open(pre / 'pre_warmup_lr0.002' / 'model_config.json'))
  assert (post_cfg['norm_placement'], pre_cfg['norm_placement']) == ('post', 'pre')
  # No warm-up: the first step runs at (almost) the full rate; warm-up: a quarter.
  lr0 = {n: _metrics(pre / n)[0]['learning_rate'] for n in
         ('post_nowarmup_lr0.002', 'pre_warmup_lr0.002')}
  assert lr0['post_nowarmup_lr0.002'] > 0.0015
  assert lr0['pre_warmup_lr0.002'] < 0.001
  text = (root / 'study.md').read_text()
  assert 'pretrain mlm_loss' in text and 'random_init' not in text


def test_length_extrapolation_study(tmp_path, in_process):
  spec = _study(tmp_path, 'length_extrapolation',
                "ONLY = ('learned', 'alibi')\nEVAL_LENGTHS = (64, 128)\n")
  root = tmp_path / 'r'
  assert study.main(['--study', spec, '--root', str(root), '--seeds', '1']) == 0
  evals = {(d, w): f for d, w, f in in_process if d.startswith('L')}
  assert sorted(evals) == [('L128', 'alibi'), ('L64', 'alibi'),
                           ('L64', 'learned')]
  for (d, w), flags in evals.items():
    assert flags['eval_only'] == 'True' and flags['data.max_seq_length'] == d[1:]
    res = json.load(open(root / 'eval_length' / d / w / 'eval_results.json'))
    assert res['eval_shapes']['eval'][1] == int(d[1:])   # The length is honoured.
  text = (root / 'study.md').read_text()
  assert '## Held-out MLM loss by evaluation length' in text
  table = text.split('## Held-out MLM loss by evaluation length')[1]
  row = next(l for l in table.splitlines() if l.startswith('| learned |'))
  assert 'n/a (position table ends before)' in row
  assert json.load(open(root / 'eval_length' / 'L128' / 'not_applicable.json')) == [
      'learned']
  assert (root / 'eval_length' / 'mlm_loss_by_length.png').stat().st_size > 0


def test_modern_vs_bert_study(tmp_path, in_process):
  spec = _study(tmp_path, 'modern_vs_bert',
                "SUITE[0]['builtin_topics'] = {'num_classes': 2, 'train': 16, 'dev': 8}\n"
                "SUITE[0]['overrides'].update({'train.num_epochs': 1.0, "
                "'train.global_batch_size': 8, 'train.log_every_steps': 1, "
                "'train.eval_every_steps': 2})\n"
                "PRETRAIN['optim.warmup_steps'] = 2\n")
  root = tmp_path / 'r'
  assert study.main(['--study', spec, '--root', str(root), '--seeds', '1']) == 0
  cfgs = {n: json.load(open(root / 'pretrain' / n / 'config.json'))
          for n in ('bert', 'modern')}
  model = {n: json.load(open(root / 'pretrain' / n / 'model_config.json'))
           for n in ('bert', 'modern')}
  assert (model['bert']['norm_placement'], model['modern']['norm_placement']) == ('post', 'pre')
  assert model['modern']['position_embedding'] == 'rope' and not model['modern']['use_bias']
  # modern masks 30%: its room for predictions is not capped at bert's 15%.
  assert cfgs['modern']['data']['mask_rate'] == 0.3
  assert cfgs['modern']['data']['max_predictions_per_seq'] == 20
  assert cfgs['bert']['data']['max_predictions_per_seq'] == 10
  # The same seconds: modern, slower per step, gets fewer steps (4 / 1.29).
  assert cfgs['bert']['train']['num_steps'] == 4
  assert cfgs['modern']['train']['num_steps'] == 3
  # Both final checkpoints evaluated alike: length 64, 15% masking.
  evals = {w: f for d, w, f in in_process if d == 'L64'}
  assert set(evals) == {'bert', 'modern'}
  for name in ('bert', 'modern'):
    ev = json.load(open(root / 'eval_length' / 'L64' / name / 'config.json'))
    assert ev['data']['mask_rate'] == 0.15 and ev['data']['max_predictions_per_seq'] == 10
  ft = {w for d, w, _ in in_process if d == 'topics120'}
  assert ft == {'bert', 'modern', 'random_init'}
  assert '| modern |' in (root / 'study.md').read_text()
