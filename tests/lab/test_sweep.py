"""Sweep runner and report: dry runs of the shipped sweeps, one real tiny sweep
(two launch.py runs), resuming, failures, and both eval_results shapes."""

import json
import os
import subprocess
import sys

import pytest

from bert_jax.lab import report
from bert_jax.lab import sweep
from bert_jax.lab import trials

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = os.path.join('experiments', 'sweeps', 'variants.py')
OBJECTIVES = os.path.join('experiments', 'sweeps', 'objectives.py')

# A 1-layer, 64-wide model, 2 steps on 40 documents: each run is mostly compile.
QUICK = ['model.num_layers=1', 'model.hidden_size=64', 'model.num_heads=2',
         'model.intermediate_size=128', 'data.max_documents=40',
         'data.max_seq_length=32', 'data.max_predictions_per_seq=5',
         'data.dupe_factor=1', 'data.tokenizer_vocab_size=400',
         'data.eval_fraction=0.1', 'train.global_batch_size=16',  # 8 fake devices
         'train.num_steps=2', 'train.log_every_steps=1', 'train.eval_every_steps=2',
         'train.eval_batches=1', 'ckpt.every_steps=2', 'ckpt.async_save=False']


def _cli(module, *args, timeout=240):
  # The environment (XLA_FLAGS with 8 fake devices, from conftest) passes
  # through the runner to every launch.py.
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ))


def _write_sweep(tmp_path, body, name='my_sweep.py'):
  path = tmp_path / name
  path.write_text(body)
  return str(path)


@pytest.mark.parametrize('path, n', [(VARIANTS, 10), (OBJECTIVES, 6)])
def test_dry_run_prints_every_command_with_its_overrides(tmp_path, capsys, path, n):
  base, entries, _ = sweep.load_sweep(path)
  runs = sweep.named_entries(entries, path)
  assert base == 'configs/pretrain.py:size=tiny,runlocal'
  assert len(runs) == n and len({name for name, _ in runs}) == n
  assert 'baseline' in dict(runs)
  assert sweep.main(['--sweep', path, '--root', str(tmp_path / 'r'), '--dry_run',
                     '--set', 'train.num_steps=50']) == 0
  out = capsys.readouterr().out
  commands = [line for line in out.splitlines() if 'launch.py' in line]
  assert len(commands) == n
  for (name, overrides), cmd in zip(runs, commands):
    assert f'--workdir={tmp_path}/r/{name} ' in cmd
    assert '--config=configs/pretrain.py:size=tiny,runlocal' in cmd
    assert '--config.train.num_steps=50' in cmd
    for key, value in overrides.items():
      assert f'--config.{key}={sweep.render(value)}' in cmd
  assert not (tmp_path / 'r').exists()  # A dry run writes nothing.


def test_values_render_as_ml_collections_parses_them():
  assert sweep.render(False) == 'False' and sweep.render(True) == 'True'
  assert sweep.render('rope') == 'rope' and sweep.render(5e-4) == '0.0005'
  assert sweep.derive_name({}) == 'baseline'
  assert sweep.derive_name({'model.position_embedding': 'rope',
                            'data.corpus': 'a/b*.txt'}) == \
      'position_embedding-rope__corpus-a_b_.txt'


@pytest.fixture(scope='module')
def tiny_sweep(tmp_path_factory):
  """Two real runs through the runner: baseline and untied decoder."""
  root = tmp_path_factory.mktemp('sweep')
  # Two at once: compiling is mostly single-threaded, so on two or more cores
  # this halves the wall time (and covers --parallel).
  args = ('--sweep', VARIANTS, '--root', str(root), '--only',
          'baseline,untied_decoder', '--parallel', '2', '--set', *QUICK)
  r = _cli('bert_jax.lab.sweep', *args)
  assert r.returncode == 0, r.stdout + r.stderr
  return root, args, r


def test_real_sweep_runs_each_entry_in_its_workdir(tiny_sweep):
  root, _, r = tiny_sweep
  assert 'All 2 run(s) done' in r.stdout
  for name in ('baseline', 'untied_decoder'):
    d = root / name
    for f in ('eval_results.json', 'metrics.jsonl', 'launch.log', 'overrides.json'):
      assert (d / f).exists(), (name, f)
    assert json.loads((d / 'status.json').read_text())['status'] == 'done'
  config = json.loads((root / 'untied_decoder' / 'config.json').read_text())
  assert config['model']['tie_word_embeddings'] is False
  assert config['model']['num_layers'] == 1 and config['train']['num_steps'] == 2
  assert json.loads((root / 'baseline' / 'config.json').read_text()
                    )['model']['tie_word_embeddings'] is True
  recorded = json.loads((root / 'untied_decoder' / 'overrides.json').read_text())
  assert recorded['overrides'] == {'model.tie_word_embeddings': False}
  assert recorded['set']['train.num_steps'] == '2'


def test_report_over_the_real_sweep(tiny_sweep, tmp_path):
  root, _, _ = tiny_sweep
  csv_path, md_path = tmp_path / 't.csv', tmp_path / 't.md'
  r = _cli('bert_jax.lab.report', '--root', str(root), '--csv', str(csv_path),
           '--markdown', str(md_path))
  assert r.returncode == 0, r.stderr
  lines = r.stdout.splitlines()
  assert lines[0].startswith('| name | overrides | status | step | mlm_accuracy | '
                             'Δ mlm_accuracy vs baseline |')
  rows = {line.split(' | ')[0].strip('| '): line.split(' | ') for line in lines[2:4]}
  assert set(rows) == {'baseline', 'untied_decoder'}
  assert rows['baseline'][1:4] == ['(none)', 'done', '2']
  assert rows['baseline'][5] == '+0.0000'
  assert rows['untied_decoder'][1] == 'model.tie_word_embeddings=False'
  assert float(rows['baseline'][-1].strip(' |').replace(',', '')) > 0  # tokens/s
  assert md_path.read_text().startswith(lines[0])
  assert csv_path.read_text().splitlines()[0].startswith('name,overrides,status,step')


def test_second_invocation_skips_finished_runs(tiny_sweep):
  root, args, _ = tiny_sweep
  before = (root / 'baseline' / 'launch.log').stat().st_mtime
  r = _cli('bert_jax.lab.sweep', *args)
  assert r.returncode == 0, r.stderr
  assert r.stdout.count('skipped') == 2 and 'running' not in r.stdout
  assert (root / 'baseline' / 'launch.log').stat().st_mtime == before
  # The same names with other overrides would mix two configs in one workdir.
  changed = [a.replace('train.num_steps=2', 'train.num_steps=3') for a in args]
  assert sweep.main(changed) == 1


def test_failed_run_is_named_with_its_log_and_the_report_shows_it(tmp_path, capsys):
  path = _write_sweep(tmp_path, (
      "BASE = 'configs/pretrain.py:size=tiny,runlocal'\n"
      "def sweep():\n"
      "  return [{'name': 'bad', 'model.norm_type': 'batchnorm'}]\n"))
  root = tmp_path / 'root'
  assert sweep.main(['--sweep', path, '--root', str(root), '--set', *QUICK]) == 1
  err = capsys.readouterr()
  log = root / 'bad' / 'launch.log'
  assert f'bad (log: {log})' in err.err and 'FAILED (exit status 2)' in err.out
  assert "model.norm_type='batchnorm' is not valid" in log.read_text()
  capsys.readouterr()
  assert report.main(['--root', str(root)]) == 0
  assert '| bad | model.norm_type=batchnorm | failed (exit 2) |' in capsys.readouterr().out


def test_a_failed_run_does_not_stop_the_others(tmp_path, monkeypatch, capsys):
  path = _write_sweep(tmp_path, (
      "BASE = 'configs/pretrain.py:size=tiny,runlocal'\n"
      "def sweep():\n"
      "  return [{'name': 'first', 'seed': 1}, {'name': 'second', 'seed': 2}]\n"))
  calls = []

  def fake_run(cmd, cwd, stdout, **kw):
    del kw
    calls.append(cmd)
    workdir = next(a.split('=', 1)[1] for a in cmd if a.startswith('--workdir='))
    if workdir.endswith('second'):
      with open(os.path.join(workdir, 'eval_results.json'), 'w') as f:
        json.dump({'step': 1, 'eval': {'mlm_accuracy': 0.5}}, f)
    return subprocess.CompletedProcess(cmd, 1 if workdir.endswith('first') else 0)

  monkeypatch.setattr(trials.subprocess, 'run', fake_run)
  assert sweep.main(['--sweep', path, '--root', str(tmp_path / 'r')]) == 1
  assert len(calls) == 2 and '--config.seed=2' in calls[1]
  assert 'error: 1 run(s) failed: first' in capsys.readouterr().err


@pytest.mark.parametrize('body, message', [
    ("def sweep():\n  return [{}]\n", 'does not define BASE'),
    ("BASE = 'configs/pretrain.py:size=tiny'\n", 'does not define sweep'),
    ("X = 1\n", 'does not define BASE and sweep'),
    ("BASE = 'configs/pretrain.py:size=tiny'\ndef sweep():\n  return {}\n",
     'must return a list of dicts'),
    ("BASE = 'configs/pretrain.py:size=tiny'\ndef sweep():\n"
     "  return [{'name': 'a'}, {'name': 'a', 'seed': 1}]\n", "both named 'a'"),
    ("BASE = 'configs/pretrain.py:size=tiny'\ndef sweep():\n"
     "  return [{'name': '../up'}]\n", 'not a safe directory name'),
    ("BASE = 'configs/pretrain.py:size=tiny'\ndef sweep():\n"
     "  return [{'model.no_such_field': 1}]\n", 'model.no_such_field'),
    ("BASE = 'configs/pretrain.py:size=tiny'\ndef sweep():\n"
     "  return [{'model.use_bias': 'maybe'}]\n", 'cannot set model.use_bias=maybe'),
])
def test_bad_sweep_file_fails_naming_it(tmp_path, capsys, body, message):
  path = _write_sweep(tmp_path, body)
  assert sweep.main(['--sweep', path, '--root', str(tmp_path / 'r'), '--dry_run']) == 2
  err = capsys.readouterr().err
  assert message in err, err
  if 'define' in message:
    assert path in err


def test_bad_invocations_fail_before_running(tmp_path, capsys):
  root = str(tmp_path / 'r')
  cases = [
      (['--sweep', str(tmp_path / 'nope.py')], 'nope.py does not exist'),
      (['--sweep', VARIANTS, '--only', 'rope,nope'], '--only nope: no such entries'),
      (['--sweep', VARIANTS, '--set', 'train.num_steps=many'],
       'cannot set train.num_steps=many'),
      (['--sweep', VARIANTS, '--set', 'train.num_stepz=5'], 'train.num_stepz'),
  ]
  for args, message in cases:
    assert sweep.main([*args, '--root', root, '--dry_run']) == 2, args
    assert message in capsys.readouterr().err, args


def test_set_changes_the_base_and_entries_keep_their_own_value(tmp_path, capsys):
  assert sweep.main(['--sweep', VARIANTS, '--root', str(tmp_path), '--dry_run',
                     '--only', 'baseline,no_bias', '--set', 'model.use_bias=True']) == 0
  out = capsys.readouterr().out
  assert "note: entry 'no_bias' keeps its own model.use_bias over --set." in out
  baseline, no_bias = [line for line in out.splitlines() if 'launch.py' in line]
  assert '--config.model.use_bias=True' in baseline
  assert '--config.model.use_bias=False' in no_bias
  assert '--config.model.use_bias=True' not in no_bias


def test_report_reads_finetuning_results_and_lists_missing_runs(tmp_path, capsys):
  def put(name, result):
    (tmp_path / name).mkdir()
    (tmp_path / name / 'eval_results.json').write_text(json.dumps(result))
    (tmp_path / name / 'overrides.json').write_text(json.dumps(
        {'overrides': {'optim.learning_rate': 1e-4} if name != 'baseline' else {}}))
  put('baseline', {'step': 10, 'eval': {'splits': {'validation': {'accuracy': 0.5}},
                                        'best': {'accuracy': 0.6, 'step': 5}}})
  put('lr', {'step': 10, 'eval': {'splits': {'validation': {'accuracy': 0.75}},
                                  'best': {'accuracy': 0.8, 'step': 10}}})
  (tmp_path / 'sweep.json').write_text(json.dumps(
      {'entries': {'baseline': {}, 'lr': {}, 'never': {'seed': 3}}}))
  # Default: the main metric at the last step (best_* is picked on the same split).
  assert report.main(['--root', str(tmp_path)]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith('| name | overrides | status | step | accuracy | '
                             'Δ accuracy vs baseline | best_accuracy |')
  assert [line.split(' | ')[0] for line in lines[2:5]] == ['| lr', '| baseline', '| never']
  assert '| lr | optim.learning_rate=0.0001 | done | 10 | 0.7500 | +0.2500 |' in lines[2]
  assert '| never | seed=3 | missing |' in lines[4]
  assert report.main(['--root', str(tmp_path), '--metric', 'best_accuracy']) == 0
  assert '| lr | optim.learning_rate=0.0001 | done | 10 | 0.8000 | +0.2000 |' in \
      capsys.readouterr().out
  assert report.main(['--root', str(tmp_path), '--metric', 'mlm_accuracy']) == 2
  assert "'mlm_accuracy' is in no run" in capsys.readouterr().err


FAKE_SBATCH = r'''#!/bin/bash
# Records its arguments, then runs the array tasks listed in $FAKE_SBATCH_RUN
# (a space-separated list of indices) one after the other, as SLURM would.
echo "$@" >> "$FAKE_SBATCH_LOG"
script="${@: -1}"
for i in $FAKE_SBATCH_RUN; do
  SLURM_ARRAY_TASK_ID=$i bash "$script" || echo "task $i failed" >> "$FAKE_SBATCH_LOG"
done
echo "Submitted batch job 4242"
'''


def test_slurm_job_array_with_a_fake_sbatch(tmp_path, monkeypatch, capsys):
  """One real trial, run by the fake scheduler; the report reads what finished."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'sbatch').write_text(FAKE_SBATCH)
  (bin_dir / 'sbatch').chmod(0o755)
  log = tmp_path / 'sbatch.log'
  root = tmp_path / 'root'
  monkeypatch.setenv('PATH', f'{bin_dir}:{os.environ["PATH"]}')
  monkeypatch.setenv('FAKE_SBATCH_LOG', str(log))
  monkeypatch.setenv('FAKE_SBATCH_RUN', '0')
  args = ['--sweep', VARIANTS, '--root', str(root), '--only', 'baseline', '--seeds', '2',
          '--scheduler', 'slurm', '--workers', '2',
          '--sbatch_args=--partition=debug --time=5', '--set', *QUICK]
  # In this process; sbatch's array task runs `python -m bert_jax.lab.sweep
  # --trial_list ... --trial 0` and launch.py as subprocesses, as on a cluster.
  assert sweep.main(args) == 0, capsys.readouterr()
  script = root / 'slurm' / 'job-0.sbatch'
  assert log.read_text().splitlines()[0] == \
      f'--array=0-1%2 --partition=debug --time=5 {script}'
  assert 'Submitted batch job 4242' in capsys.readouterr().out
  assert '--trial "$SLURM_ARRAY_TASK_ID"' in script.read_text()
  listed = json.loads((root / 'slurm' / 'job-0.json').read_text())['trials']
  assert [t['name'] for t in listed] == ['baseline.seed0', 'baseline.seed1']
  done = root / 'baseline.seed0'
  assert (done / 'eval_results.json').exists() and not (root / 'baseline.seed1').exists()
  assert json.loads((done / 'config.json').read_text())['seed'] == 0
  assert json.loads((done / 'status.json').read_text())['status'] == 'done'
  # The report reads whatever has finished (and writes its figures).
  assert report.main([str(root)]) == 0
  assert '| baseline | (none) | 1/2 done (missing) | 2 |' in capsys.readouterr().out
  assert (root / 'report_files' / 'learning_curves.png').exists()
  # Resubmitting sends only the unfinished trial; nothing runs this time.
  monkeypatch.setenv('FAKE_SBATCH_RUN', '')
  assert sweep.main(args) == 0
  assert 'baseline.seed0: skipped' in capsys.readouterr().out
  assert log.read_text().splitlines()[1].startswith('--array=0-0%2 ')
  assert [t['name'] for t in json.loads(
      (root / 'slurm' / 'job-1.json').read_text())['trials']] == ['baseline.seed1']
  # An array task of a finished trial does nothing; a bad index fails.
  job0 = str(root / 'slurm' / 'job-0.json')
  assert sweep.main(['--trial_list', job0, '--trial', '0']) == 0
  assert 'skipped' in capsys.readouterr().out
  assert sweep.main(['--trial_list', job0, '--trial', '5']) == 2
  assert 'has trials 0-1' in capsys.readouterr().err
