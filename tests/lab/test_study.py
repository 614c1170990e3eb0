"""Pretrain -> fine-tune studies (bert_jax/lab/study.py, study_report.py)
without training: trials run through a fake ``subprocess.run``; and the
pretraining corpus exclusion that keeps downstream dev text out."""

import json
import os
import subprocess

import pytest

from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import inputs as pretrain_inputs
from bert_jax.data.pretrain import examples as pretraining
from bert_jax.text import load_tokenizer
from bert_jax.configs import pretrain as pretrain_config
from experiments.benchmarks import objective_examples
from bert_jax.lab import study
from bert_jax.lab import study_report
from bert_jax.lab import trials

# Fine-tuning accuracy per (init, seed): baseline clearly above random init,
# pre_ln within its noise.
_ACC = {'baseline': (0.80, 0.82, 0.81), 'pre_ln': (0.62, 0.55, 0.66),
        'random': (0.60, 0.58, 0.61)}


def _fake_launch(calls):
  def run(cmd, cwd, stdout, **kw):
    del cwd, stdout, kw
    flags = dict(a[len('--config.'):].split('=', 1) for a in cmd
                 if a.startswith('--config.'))
    workdir = next(a.split('=', 1)[1] for a in cmd if a.startswith('--workdir='))
    calls.append((workdir, flags))
    seed = int(flags.get('seed', 0))
    if 'pretrain.py' in cmd[2]:
      os.makedirs(os.path.join(workdir, 'tokenizer'), exist_ok=True)
      trials.write_json(os.path.join(workdir, 'model_config.json'), {
          'num_layers': 2, 'hidden_size': 128, 'vocab_size': 8000,
          'norm_placement': flags.get('model.norm_placement', 'post'),
          'hidden_dropout': 0.1, 'scan_layers': False})
      result = {'step': 8, 'eval': {'mlm_accuracy': 0.1 + 0.01 * seed}}
    else:
      init = flags.get('init_from', '')
      key = 'random' if not init else os.path.basename(init).split('.')[0]
      acc = _ACC[key][seed]
      result = {'step': 10, 'eval': {'splits': {'validation': {'accuracy': acc}},
                                     'best': {'accuracy': acc, 'step': 10}}}
    with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
      for step in (5, 10):
        f.write(json.dumps({'step': step, 'split': 'train', 'loss': 1 / step}) + '\n')
    trials.write_json(os.path.join(workdir, 'eval_results.json'), result)
    return subprocess.CompletedProcess(cmd, 0)
  return run


def test_study_pretrains_finetunes_and_reports_against_random_init(
    tmp_path, monkeypatch, capsys):
  spec = tmp_path / 'study.py'
  spec.write_text(
      "VARIANTS = 'experiments/sweeps/variants.py'\nONLY = ('baseline', 'pre_ln')\n"
      "SEEDS = 3\nPRETRAIN = {'train.num_steps': 8}\n"
      "SUITE = [{'name': 'topics', 'base': 'configs/finetune.py:task=local_classification,"
      "size=tiny', 'builtin_topics': {'num_classes': 2, 'train': 20, 'dev': 10},"
      " 'overrides': {'train.num_epochs': 1.0}}]\n")
  calls = []
  monkeypatch.setattr(trials.subprocess, 'run', _fake_launch(calls))
  root = tmp_path / 'root'
  assert study.main(['--study', str(spec), '--root', str(root), '--workers', '2',
                     '--finetune_set', 'train.log_every_steps=5']) == 0
  pre = {os.path.basename(w): f for w, f in calls if '/pretrain/' in w}
  ft = {os.path.basename(w): f for w, f in calls if '/finetune/topics/' in w}
  assert sorted(pre) == [f'{v}.seed{s}' for v in ('baseline', 'pre_ln') for s in range(3)]
  assert sorted(ft) == sorted(list(pre) + [f'random_init.seed{s}' for s in range(3)])
  heldout = str(root / 'data' / 'heldout_sentences.txt')
  assert all(f['data.exclude_sentences'] == heldout and f['train.num_steps'] == '8'
             for f in pre.values())
  # The held-out file holds every dev sentence, and no training sentence.
  excluded = set(open(heldout).read().splitlines())
  dev = [l.split('\t')[0] for l in open(root / 'data/topics/dev.tsv').read().splitlines()[1:]]
  train = [l.split('\t')[0] for l in open(root / 'data/topics/train.tsv').read().splitlines()[1:]]
  assert len(dev) == 10 and set(dev) <= excluded and not set(train) & excluded
  for name, f in ft.items():
    assert f['data.train_file'].endswith('data/topics/train.tsv')
    assert f['train.log_every_steps'] == '5' and f['train.num_epochs'] == '1.0'
    seed = name.rsplit('seed', 1)[1]
    assert f['seed'] == seed                      # Same seed as its pretraining.
    if name.startswith('random_init'):
      # Same architecture and tokenizer as baseline.seedS, no weights.
      assert 'init_from' not in f
      assert f['data.tokenizer'] == str(root / f'pretrain/baseline.seed{seed}/tokenizer')
      assert f['model.num_layers'] == '2' and f['model.norm_placement'] == 'post'
      assert 'model.hidden_dropout' not in f    # Runtime fields stay the config's.
    else:
      assert f['init_from'] == str(root / 'pretrain' / name)
  text = (root / 'study.md').read_text()
  row = next(l for l in text.splitlines() if l.startswith('| baseline |'))
  assert '0.8100 ± 0.0100' in row and '| beats random init | (reference) |' in row
  row = next(l for l in text.splitlines() if l.startswith('| pre_ln |'))
  assert row.endswith('| does NOT beat random init (intervals overlap) | worse |')
  assert '**pre_ln does NOT beat random init (intervals overlap)** on topics' in text
  assert '| random_init | (random init: no pretraining) | – | 0.5967' in text
  assert 'Held-out text of topics: excluded from pretraining: 10 sentences of dev.tsv' in text
  for png in ('pretrain_report_files/learning_curves.png',
              'finetune_topics_report_files/final_metric.png'):
    assert (root / png).stat().st_size > 1000
  # Resumable: a second run skips all 15 trials.
  calls.clear()
  capsys.readouterr()
  assert study.main(['--study', str(spec), '--root', str(root),
                     '--finetune_set', 'train.log_every_steps=5']) == 0
  assert not calls and capsys.readouterr().out.count('skipped') == 15


def test_bad_study_files_fail_naming_the_field(tmp_path, capsys):
  spec = tmp_path / 's.py'
  for body, message in [
      ("VARIANTS = 'experiments/sweeps/variants.py'\n", 'SUITE must be a list'),
      ("VARIANTS = 'experiments/sweeps/variants.py'\nONLY = ('nope',)\nSUITE = [{}]\n",
       "ONLY names ['nope']"),
      ("VARIANTS = 'experiments/sweeps/variants.py'\nSUITE = [{'name': 't', 'base': "
       "'configs/finetune.py:task=local_classification', 'overrides': {'optim.lr': 1}}]\n",
       'cannot set optim.lr=1'),
      ("SUITE = []\n", 'a study needs VARIANTS')]:
    spec.write_text(body)
    assert study.main(['--study', str(spec), '--root', str(tmp_path / 'r')]) == 2
    assert message in capsys.readouterr().err
  assert not (tmp_path / 'r' / 'pretrain').exists()


def test_corpus_exclusion_and_verdicts(tmp_path):
  docs = [['A held out one.', 'Kept  here.'], ['A held out one.'], ['Also kept.']]
  out, removed = corpora.exclude_sentences(docs, {'A held out one.', 'Kept here.'})
  assert (out, removed) == ([['Also kept.']], 3)
  path = tmp_path / 'x.txt'
  path.write_text('  A   b c.\n\nD.\n')
  assert corpora.read_sentence_list(str(path)) == {'A b c.', 'D.'}
  with pytest.raises(FileNotFoundError, match='data.exclude_sentences'):
    corpora.read_sentence_list(str(tmp_path / 'none.txt'))
  s = study_report.stats.summarize
  assert study_report.verdict(s([0.90, 0.91, 0.90]), s([0.50, 0.52, 0.51]), False) == 'beats random init'
  assert study_report.verdict(s([0.40, 0.41, 0.40]), s([0.50, 0.52, 0.51]), False) == \
      'does NOT beat random init (lower)'
  assert study_report.verdict(s([0.9]), s([0.5, 0.52]), False) == 'cannot tell (n<2)'



def test_pretraining_inputs_leave_out_the_excluded_sentences(tmp_path):
  corpus = tmp_path / 'corpus.txt'
  docs = [[f'Document {d} sentence {i} talks about topic {d * 7 + i}.' for i in range(6)]
          for d in range(8)]
  corpus.write_text('\n\n'.join('\n'.join(d) for d in docs) + '\n')
  held = [docs[0][1], docs[3][4], 'A sentence that is in no document.']
  (tmp_path / 'held.txt').write_text('\n'.join(held) + '\n')
  data = pretrain_config.get_config('size=tiny,runlocal').data
  data.update(corpus=str(corpus), tokenizer_vocab_size=120, max_seq_length=32,
              max_predictions_per_seq=5, dupe_factor=1, eval_fraction=0.0)
  data.exclude_sentences = str(tmp_path / 'held.txt')
  inputs = pretrain_inputs.build(data, str(tmp_path / 'w'), seed=0)
  assert inputs.stats['excluded_sentences'] == 2
  assert inputs.stats['documents'] == 8
  data.prepared_dir = str(tmp_path)
  with pytest.raises(ValueError, match='data.exclude_sentences'):
    pretrain_inputs.build(data, str(tmp_path / 'w2'), seed=0)
  # The objectives' examples as the sweep file describes them (same tokenizer).
  assert objective_examples.main(['--tokenizer', str(tmp_path / 'w' / 'tokenizer'),
                                  '--corpus', str(corpus), '--max_seq_length', '32']) == 0
  tok = load_tokenizer(str(tmp_path / 'w' / 'tokenizer'))
  token_docs = pretraining.documents_to_token_docs(docs, tok)
  for name in ('mlm', 'mlm_nsp', 'mlm_sop'):
    m = objective_examples.measure(token_docs, tok, name, 32, 8)
    assert m['examples_per_row'] >= 1 and 0 < m['tokens_per_example'] <= 32
    # Packing moves tokens, never drops them.
    assert m['rows'] * 32 * (1 - m['padding']) == pytest.approx(
        m['examples'] * m['tokens_per_example'])
