"""Seeds, statistics, search spaces, k-fold, device pinning, the aggregated
report with its figures, and the hyper-parameter search, without training:
trials run through a fake ``subprocess.run`` that writes eval_results.json."""

import collections
import json
import os
import random
import subprocess
import threading
import time

import pytest
from scipy import stats as scipy_stats

from bert_jax.lab import aggregate
from bert_jax.lab import hpsearch
from bert_jax.lab import kfold
from bert_jax.lab import launchers
from bert_jax.lab import report
from bert_jax.lab import search_space
from bert_jax.lab import stats
from bert_jax.lab import sweep
from bert_jax.lab import trials

VARIANTS = os.path.join('experiments', 'sweeps', 'variants.py')
RECIPES = os.path.join('experiments', 'sweeps', 'recipes.py')


def test_summary_and_the_noise_rule():
  s = stats.summarize([0.70, 0.72, 0.74])
  assert s.n == 3 and s.mean == pytest.approx(0.72) and s.std == pytest.approx(0.02)
  # Student t at 2 degrees of freedom (4.303), not the normal 1.96.
  half = 4.302653 * 0.02 / 3 ** 0.5
  assert (s.lo, s.hi) == (pytest.approx(0.72 - half), pytest.approx(0.72 + half))
  assert stats.t_quantile(5) == pytest.approx(scipy_stats.t.ppf(0.975, 4))
  one = stats.summarize([0.5, float('nan'), None])
  assert one.n == 1 and one.std is None and one.lo is None
  assert stats.summarize([]) is None
  base = stats.summarize([0.60, 0.61, 0.62])
  assert stats.compare(s, base, lower_is_better=False) == 'better'
  assert stats.compare(base, s, lower_is_better=False) == 'worse'
  assert stats.compare(s, base, lower_is_better=True) == 'worse'
  close = stats.summarize([0.71, 0.73, 0.70])
  assert stats.compare(close, s, lower_is_better=False) == 'within noise'
  assert stats.compare(one, s, False) == 'n<2: no interval'


def test_seeds_make_one_trial_per_entry_and_seed(tmp_path, capsys):
  assert trials.parse_seeds('3') == [0, 1, 2]
  assert trials.parse_seeds('0,5,9') == [0, 5, 9]
  for bad in ('0', '1,1', 'a,b'):
    with pytest.raises(ValueError):
      trials.parse_seeds(bad)
  root = tmp_path / 'r'
  assert sweep.main(['--sweep', VARIANTS, '--root', str(root), '--only',
                     'baseline,rope', '--seeds', '3', '--dry_run']) == 0
  cmds = [l for l in capsys.readouterr().out.splitlines() if 'launch.py' in l]
  assert len(cmds) == 6
  for cmd, (entry, seed) in zip(cmds, [(e, s) for e in ('baseline', 'rope')
                                       for s in range(3)]):
    assert f'--workdir={root}/{entry}.seed{seed} ' in cmd
    assert f'--config.seed={seed}' in cmd
  # An entry's own seeds win; an entry that fixes its seed cannot have several.
  path = tmp_path / 's.py'
  path.write_text("BASE = 'configs/pretrain.py:size=tiny,runlocal'\nSEEDS = 2\n"
                  "def sweep():\n  return [{'name': 'a'}, {'name': 'b', 'seeds': '7,8,9'},"
                  " {'name': 'c', 'seed': 4, 'seeds': 1}]\n")
  assert sweep.main(['--sweep', str(path), '--root', str(root), '--dry_run']) == 0
  out = capsys.readouterr().out
  names = [l[2:] for l in out.splitlines() if l.startswith('# ') and 'from' not in l]
  assert names == ['a.seed0', 'a.seed1', 'b.seed7', 'b.seed8', 'b.seed9', 'c']
  assert '--config.seed=4' in out
  path.write_text("BASE = 'configs/pretrain.py:size=tiny,runlocal'\n"
                  "def sweep():\n  return [{'name': 'c', 'seed': 4}]\n")
  assert sweep.main(['--sweep', str(path), '--root', str(root), '--seeds', '2',
                     '--dry_run']) == 2
  assert "entry 'c' sets seed itself but has 2 seeds" in capsys.readouterr().err


def test_grid_random_and_the_bert_paper_space():
  paper = search_space.settings_from_args('bert_paper', [], 0, [], 0)
  assert len(paper) == 18
  assert {s['optim.learning_rate'] for s in paper} == {5e-5, 3e-5, 2e-5}
  assert {s['train.global_batch_size'] for s in paper} == {16, 32}
  assert {s['train.num_epochs'] for s in paper} == {2.0, 3.0, 4.0}
  grid = search_space.settings_from_args(
      '', ['optim.learning_rate=5e-5,3e-5', 'train.global_batch_size=16,32'], 0, [], 0)
  assert grid == [{'optim.learning_rate': 5e-5, 'train.global_batch_size': 16},
                  {'optim.learning_rate': 5e-5, 'train.global_batch_size': 32},
                  {'optim.learning_rate': 3e-5, 'train.global_batch_size': 16},
                  {'optim.learning_rate': 3e-5, 'train.global_batch_size': 32}]
  dists = ['optim.learning_rate=loguniform:1e-5:1e-3', 'model.hidden_dropout=uniform:0:0.2',
           'train.num_epochs=choice:2,3,4']
  drawn = search_space.settings_from_args('', [], 20, dists, 7)
  assert drawn == search_space.settings_from_args('', [], 20, dists, 7)  # Deterministic.
  assert drawn != search_space.settings_from_args('', [], 20, dists, 8)
  assert len({repr(sorted(d.items())) for d in drawn}) == 20
  lrs = [d['optim.learning_rate'] for d in drawn]
  assert all(1e-5 <= v <= 1e-3 for v in lrs)
  assert sum(v < 1e-4 for v in lrs) >= 5  # Log-uniform: half the draws below 1e-4.
  assert all(0 <= d['model.hidden_dropout'] <= 0.2 for d in drawn)
  assert {d['train.num_epochs'] for d in drawn} <= {2, 3, 4}
  for args, message in [
      (('nope', [], 0, [], 0), "--space 'nope': unknown"),
      (('', ['lr'], 0, [], 0), "expected FIELD=..."),
      (('', [], 3, ['f=normal:0:1'], 0), "unknown distribution 'normal'"),
      (('', [], 3, ['f=loguniform:0:1'], 0), 'LO > 0'),
      (('', [], 0, ['f=uniform:0:1'], 0), '--dist without --random'),
      (('', ['a=1,2'], 3, [], 0), 'only 2 distinct settings')]:
    with pytest.raises(search_space.SpaceError, match=message.replace('(', r'\(')):
      search_space.settings_from_args(*args)


def test_kfold_splits_are_deterministic_disjoint_and_stratified(tmp_path):
  src = tmp_path / 'train.tsv'
  rng = random.Random(0)
  lines = [f'sentence {i}\t{"pos" if i % 3 else "neg"}' for i in range(31)]
  rng.shuffle(lines)
  src.write_text('sentence\tlabel\n' + '\n'.join(lines) + '\n')
  folds = kfold.split_file(str(src), 4, str(tmp_path / 'f'), seed=0, label_field='label')
  again = kfold.split_file(str(src), 4, str(tmp_path / 'g'), seed=0, label_field='label')
  devs = []
  for (train, dev), (train2, dev2) in zip(folds, again):
    t, d = open(train).read().splitlines(), open(dev).read().splitlines()
    assert t[0] == d[0] == 'sentence\tlabel'
    assert not set(t[1:]) & set(d[1:]) and sorted(t[1:] + d[1:]) == sorted(lines)
    assert open(dev2).read().splitlines() == d and open(train2).read().splitlines() == t
    assert {l.split('\t')[1] for l in d[1:]} == {'pos', 'neg'}  # Both classes.
    devs.append(set(d[1:]))
  assert set().union(*devs) == set(lines) and sorted(map(len, devs)) == [7, 8, 8, 8]
  other = kfold.split_file(str(src), 4, str(tmp_path / 'h'), seed=1, label_field='label')
  assert open(other[0][1]).read() != open(folds[0][1]).read()
  jl = tmp_path / 'train.jsonl'
  jl.write_text(''.join(json.dumps({'text': str(i), 'label': i % 2}) + '\n' for i in range(6)))
  parts = kfold.split_file(str(jl), 3, str(tmp_path / 'j'), label_field='label')
  assert sum(len(open(d).read().splitlines()) for _, d in parts) == 6
  with pytest.raises(ValueError, match='fewer than k=10'):
    kfold.split_file(str(jl), 10, str(tmp_path / 'k'))
  with pytest.raises(ValueError, match="no column 'gold'"):
    kfold.split_file(str(src), 2, str(tmp_path / 'k'), label_field='gold')


def test_workers_are_pinned_to_gpus_round_robin(tmp_path, monkeypatch):
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '0,1,2,3')
  gpus = launchers.visible_gpus('auto')
  assert gpus == ['0', '1', '2', '3']
  assert launchers.slot_envs(2, gpus) == [{'CUDA_VISIBLE_DEVICES': '0,2'},
                                          {'CUDA_VISIBLE_DEVICES': '1,3'}]
  six = launchers.slot_envs(6, gpus)
  assert [e['CUDA_VISIBLE_DEVICES'] for e in six] == ['0', '1', '2', '3', '0', '1']
  assert all(e['XLA_PYTHON_CLIENT_PREALLOCATE'] == 'false' for e in six)
  assert launchers.slot_envs(1, gpus) == [{}]   # One worker keeps every device.
  monkeypatch.delenv('CUDA_VISIBLE_DEVICES')
  fake = tmp_path / 'bin'
  fake.mkdir()
  (fake / 'nvidia-smi').write_text('#!/bin/sh\necho "GPU 0: H100 (UUID: a)"\n'
                                   'echo "GPU 1: H100 (UUID: b)"\n')
  (fake / 'nvidia-smi').chmod(0o755)
  monkeypatch.setenv('PATH', f'{fake}:{os.environ["PATH"]}')
  assert launchers.visible_gpus('auto') == ['0', '1']
  assert launchers.visible_gpus('none') == []
  # Through the runner: 4 trials on 2 workers never share a GPU at once
  # (which slot takes which trial depends on timing: count overlaps instead).
  envs, running, overlaps = [], collections.Counter(), []
  lock = threading.Lock()

  def fake_run(cmd, cwd, stdout, env, **kw):
    del cwd, stdout, kw
    gpu = env['CUDA_VISIBLE_DEVICES']
    with lock:
      envs.append(gpu)
      running[gpu] += 1
      overlaps.append(running[gpu] > 1)
    time.sleep(0.2)  # Long enough for the other worker to start one.
    workdir = next(a.split('=', 1)[1] for a in cmd if a.startswith('--workdir='))
    trials.write_json(os.path.join(workdir, 'eval_results.json'),
                      {'step': 1, 'eval': {'mlm_accuracy': 0.1}})
    with lock:
      running[gpu] -= 1
    return subprocess.CompletedProcess(cmd, 0)

  monkeypatch.setattr(trials.subprocess, 'run', fake_run)
  assert sweep.main(['--sweep', VARIANTS, '--root', str(tmp_path / 'r'), '--only',
                     'baseline,rope', '--seeds', '2', '--workers', '2', '--gpus', '0,1']) == 0
  assert len(envs) == 4 and set(envs) == {'0', '1'} and not any(overlaps)


def _fake_finetune(scores):
  """A subprocess.run that 'fine-tunes': accuracy from SCORES(overrides)."""
  calls = []

  def run(cmd, cwd, stdout, **kw):
    del cwd, stdout, kw
    flags = dict(a[len('--config.'):].split('=', 1) for a in cmd
                 if a.startswith('--config.'))
    calls.append(flags)
    workdir = next(a.split('=', 1)[1] for a in cmd if a.startswith('--workdir='))
    acc = scores(flags)
    trials.write_json(os.path.join(workdir, 'eval_results.json'), {
        'step': 10, 'eval': {'splits': {'validation': {'accuracy': acc}},
                             'best': {'accuracy': acc, 'step': 10}}})
    with open(os.path.join(workdir, 'metrics.jsonl'), 'w') as f:
      for step in (5, 10):
        f.write(json.dumps({'step': step, 'split': 'train', 'loss': 1 / step,
                            'tokens_per_sec': 100.0}) + '\n')
        f.write(json.dumps({'step': step, 'split': 'eval', 'eval_split': 'validation',
                            'accuracy': acc * step / 10}) + '\n')
    return subprocess.CompletedProcess(cmd, 0)
  return run, calls


def test_kfold_search_selects_on_folds_then_trains_on_all(tmp_path, monkeypatch, capsys):
  train = tmp_path / 'train.tsv'
  train.write_text('sentence\tlabel\n' + ''.join(
      f's{i}\t{"ab"[i % 2]}\n' for i in range(12)))
  test = tmp_path / 'test.tsv'
  test.write_text('sentence\tlabel\ns\ta\n')

  def scores(flags):  # 3e-5 is best; fold 1 is harder; the final run scores 0.9.
    if flags['data.train_file'] == str(train):
      return 0.9
    lr = float(flags['optim.learning_rate'])
    return {5e-5: 0.6, 3e-5: 0.8}[lr] - (0.05 if 'fold1' in flags['data.train_file'] else 0)

  run, calls = _fake_finetune(scores)
  monkeypatch.setattr(trials.subprocess, 'run', run)
  root = tmp_path / 'hp'
  args = ['--root', str(root), '--base', 'configs/finetune.py:task=local_classification,size=tiny',
          '--grid', 'optim.learning_rate=5e-5,3e-5', '--kfold', '3', '--set',
          f'data.train_file={train}', f'data.eval_file={test}']
  assert hpsearch.main(args) == 0
  out = capsys.readouterr().out
  assert len(calls) == 2 * 3 + 1
  for c in calls[:6]:
    assert '/folds/fold' in c['data.train_file'] and '_dev.tsv' in c['data.eval_file']
  assert calls[6]['data.train_file'] == str(train)
  assert calls[6]['data.eval_file'] == str(test)
  assert calls[6]['optim.learning_rate'] == '3e-05'
  assert 'selected learning_rate-3e-05: accuracy 0.7833 ± 0.0289 (n=3' in out
  outcome = json.loads((root / 'hpsearch.json').read_text())
  assert outcome['selected'] == 'learning_rate-3e-05'
  assert outcome['setting'] == {'optim.learning_rate': 3e-5}
  assert outcome['search']['learning_rate-5e-05']['mean'] == pytest.approx(0.5833, abs=1e-4)
  assert outcome['final']['mean'] == pytest.approx(0.9)
  # The search report groups folds per setting, with intervals and the noise rule.
  md = (root / 'search_report.md').read_text()
  assert '| learning_rate-3e-05 | optim.learning_rate=3e-05 | 3/3 done |' in md
  assert '| learning_rate-5e-05 |' in md and '| worse |' in md
  assert (root / 'search_report_files' / 'final_metric.png').stat().st_size > 1000
  # Rerunning skips every finished trial and selects the same setting.
  calls.clear()
  assert hpsearch.main(args) == 0
  assert calls == [] and 'skipped' in capsys.readouterr().out


def test_report_over_seeds_writes_table_and_figures(tmp_path, monkeypatch, capsys):
  def scores(flags):
    lr, bs = float(flags['optim.learning_rate']), int(flags['train.global_batch_size'])
    return 0.5 + (0.2 if lr > 4e-5 else 0) + 0.01 * int(flags['seed']) + bs / 1000

  run, _ = _fake_finetune(scores)
  monkeypatch.setattr(trials.subprocess, 'run', run)
  root = tmp_path / 'grid'
  assert sweep.main(['--base', 'configs/finetune.py:task=local_classification,size=tiny',
                     '--grid', 'optim.learning_rate=5e-5,2e-5',
                     '--grid', 'train.global_batch_size=16,32', '--seeds', '3',
                     '--root', str(root)]) == 0
  capsys.readouterr()
  assert report.main([str(root), '--baseline', 'learning_rate-2e-05__global_batch_size-16',
                      '--out', str(tmp_path / 'rep.md')]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith('| name | overrides | status | step | accuracy mean | ± std | '
                             '95% CI | Δ vs learning_rate-2e-05__global_batch_size-16 | '
                             'noise rule |')
  top = lines[2].split(' | ')
  assert top[0] == '| learning_rate-5e-05__global_batch_size-32' and top[2] == '3/3 done'
  assert top[4:7] == ['0.7420', '0.0100', '[0.7172, 0.7668]'] and top[8] == 'better'
  row16 = next(l for l in lines if l.startswith('| learning_rate-2e-05__global_batch_size-32'))
  assert '| +0.0160 | within noise |' in row16
  text = (tmp_path / 'rep.md').read_text()
  for png in ('learning_curves.png', 'final_metric.png', 'heatmap.png'):
    assert f'](rep_files/{png})' in text
    assert (tmp_path / 'rep_files' / png).read_bytes()[:4] == b'\x89PNG'
  assert 'Noise rule' in text
  # Every metric gets its statistics too (here best_accuracy, the same values).
  assert ('| learning_rate-5e-05__global_batch_size-32 | 0.7420 ± 0.0100 [0.7172, 0.7668] '
          '(n=3) | 0.7420 ± 0.0100 [0.7172, 0.7668] (n=3) |') in text


def test_recipes_sweep_uses_one_base_per_entry(tmp_path, capsys):
  assert sweep.main(['--sweep', RECIPES, '--root', str(tmp_path), '--dry_run',
                     '--seeds', '1']) == 0
  cmds = [l for l in capsys.readouterr().out.splitlines() if 'launch.py' in l]
  assert len(cmds) == 3
  for cmd, recipe in zip(cmds, ('bert', 'bert_2phase', 'modern')):
    assert f'--config=configs/pretrain.py:size=tiny,runlocal,recipe={recipe} ' in cmd


def test_a_one_seed_trial_beside_seeded_ones_is_not_counted_twice():
  def row(name, seed, acc):
    return {'name': name, 'entry': 'baseline', 'seed': seed, 'status': 'done',
            'metrics': {'accuracy': acc}, 'overrides': {}, 'step': 10,
            'tokens_per_sec': None}
  rows = [row('baseline', None, 0.36), row('baseline.seed0', 0, 0.36),
          row('baseline.seed1', 1, 0.37), row('baseline.seed2', 2, 0.38)]
  (g,) = aggregate.group(rows)
  assert [t['name'] for t in g['trials']] == [
      'baseline.seed0', 'baseline.seed1', 'baseline.seed2']
  assert g['summaries']['accuracy'].n == 3
  assert '1 one-seed trial(s) of baseline left out' in g['status']
  (alone,) = aggregate.group([row('baseline', None, 0.36)])  # One seed: kept.
  assert alone['summaries']['accuracy'].n == 1 and alone['status'] == 'done'
