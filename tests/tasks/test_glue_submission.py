"""GLUE submission: the MNLI run predicts AX; workdirs -> the server's files."""

import csv
import os
import zipfile

import numpy as np
import pytest

from bert_jax.data.finetune import glue
from bert_jax.tasks import glue_submission as gs
from bert_jax.tasks import registry
from bert_jax.configs import finetune
# Shared fixtures: the MiniLM tokenizer and a tiny pretrained checkpoint.
from tests.tasks.test_classification import SEQ, tiny_model, tok  # pylint: disable=unused-import
from tests.tasks.test_finetune_run import _config, tiny_ckpt  # pylint: disable=unused-import

SERVER_FILES = ['CoLA.tsv', 'SST-2.tsv', 'MRPC.tsv', 'STS-B.tsv', 'QQP.tsv',
                'MNLI-m.tsv', 'MNLI-mm.tsv', 'QNLI.tsv', 'RTE.tsv', 'WNLI.tsv',
                'AX.tsv']
N = 5
SIZES = {f: N for f in SERVER_FILES}


def _read(path):
  with open(path, newline='') as f:
    return list(csv.reader(f, delimiter='\t'))


def _fake_workdir(root, task, sub=gs.PREDICTION_DIRS[0], seed=0, skip=()):
  """A workdir whose run wrote TASK's test TSVs into SUB, as classification
  does (glue.write_glue_submission), N examples each."""
  workdir = os.path.join(root, task)
  rng = np.random.default_rng(seed)
  for name in gs.files_of(task):
    if name in skip:
      continue
    names = glue.LABEL_NAMES[task]
    preds = (rng.uniform(0, 5, N) if names is None
             else rng.integers(0, len(names), N))
    glue.write_glue_submission(task, np.arange(N)[::-1], preds, names,
                               os.path.join(workdir, sub, name))
  return workdir


def _all_workdirs(root, **kw):
  return {t: _fake_workdir(root, t, **kw) for t in glue.TASKS}


def test_server_file_list():
  assert list(gs.SUBMISSION_FILES) == [
      'CoLA.tsv', 'SST-2.tsv', 'MRPC.tsv', 'QQP.tsv', 'STS-B.tsv',
      'MNLI-m.tsv', 'MNLI-mm.tsv', 'AX.tsv', 'QNLI.tsv', 'RTE.tsv',
      'WNLI.tsv']
  assert set(gs.TEST_SIZES) == set(SERVER_FILES)
  assert gs.SUBMISSION_FILES['AX.tsv'] == ('mnli', 'ax')
  assert glue.submission_values('mnli') == ('entailment', 'neutral',
                                            'contradiction')
  assert glue.submission_values('wnli') == ('0', '1')
  assert glue.submission_values('stsb') is None


def test_complete_submission(tmp_path):
  workdirs = _all_workdirs(str(tmp_path / 'runs'))
  out = str(tmp_path / 'out')
  paths = gs.make_submission(workdirs, out, test_sizes=SIZES)
  assert sorted(os.listdir(out)) == sorted(SERVER_FILES + ['submission.zip'])
  assert paths[-1] == os.path.join(out, 'submission.zip')
  with zipfile.ZipFile(paths[-1]) as z:
    assert sorted(z.namelist()) == sorted(SERVER_FILES)
  nli = {'entailment', 'neutral', 'contradiction'}
  spellings = {'AX.tsv': nli, 'MNLI-m.tsv': nli, 'MNLI-mm.tsv': nli,
               'QNLI.tsv': {'entailment', 'not_entailment'},
               'RTE.tsv': {'entailment', 'not_entailment'}}
  for name in SERVER_FILES:
    rows = _read(os.path.join(out, name))
    assert rows[0] == ['index', 'prediction'] and len(rows) == N + 1
    assert [r[0] for r in rows[1:]] == [str(i) for i in range(N)]
    values = {r[1] for r in rows[1:]}
    if name == 'STS-B.tsv':
      assert all(0 <= float(v) <= 5 for v in values)
    else:
      assert values <= spellings.get(name, {'0', '1'}), name


def test_command_line_with_runs_folder(tmp_path, capsys, monkeypatch):
  runs = str(tmp_path / 'runs')
  _all_workdirs(runs)
  monkeypatch.setattr(gs, 'TEST_SIZES', SIZES)
  out = str(tmp_path / 'out')
  assert gs.main(['--runs', runs, '--out', out]) == 0
  assert 'Wrote 11 files' in capsys.readouterr().out
  # A --workdir overrides the runs folder's.
  other = _fake_workdir(str(tmp_path / 'other'), 'cola', seed=7)
  assert gs.main(['--runs', runs, '--workdir', f'cola={other}', '--out',
                  out]) == 0
  assert _read(os.path.join(out, 'CoLA.tsv')) == _read(os.path.join(
      other, gs.PREDICTION_DIRS[0], 'CoLA.tsv'))


def test_missing_task_is_named(tmp_path, capsys, monkeypatch):
  workdirs = _all_workdirs(str(tmp_path / 'runs'))
  del workdirs['rte']
  with pytest.raises(gs.SubmissionError, match=r'rte: no workdir given'):
    gs.make_submission(workdirs, str(tmp_path / 'out'), test_sizes=SIZES)
  assert not os.path.exists(tmp_path / 'out')
  # Partial: the other ten files are written.
  paths = gs.make_submission(workdirs, str(tmp_path / 'out'),
                             allow_partial=True, test_sizes=SIZES)
  assert len(paths) == 11 and 'RTE.tsv' not in os.listdir(tmp_path / 'out')
  # The command line says the same and fails.
  monkeypatch.setattr(gs, 'TEST_SIZES', SIZES)
  args = [f'--workdir={t}={d}' for t, d in workdirs.items()]
  assert gs.main(args + ['--out', str(tmp_path / 'cli')]) == 1
  assert 'rte: no workdir given' in capsys.readouterr().err
  with pytest.raises(FileNotFoundError, match='nowhere'):
    gs.main(['--runs', str(tmp_path / 'nowhere'), '--out', 'x'])


def test_missing_ax_says_how_to_predict_it(tmp_path):
  workdirs = _all_workdirs(str(tmp_path / 'runs'))
  workdirs['mnli'] = _fake_workdir(str(tmp_path / 'other'), 'mnli',
                                   skip=('AX.tsv',))
  with pytest.raises(gs.SubmissionError,
                     match=r'mnli: no AX\.tsv in .*best.*eval_splits=.*,ax'):
    gs.make_submission(workdirs, str(tmp_path / 'out'), test_sizes=SIZES)
  workdirs['sst2'] = str(tmp_path / 'absent')
  with pytest.raises(gs.SubmissionError, match=r'sst2: workdir not found'):
    gs.make_submission(workdirs, str(tmp_path / 'out'), test_sizes=SIZES)


def test_best_checkpoint_preferred_and_never_mixed(tmp_path):
  root = str(tmp_path / 'runs')
  workdirs = _all_workdirs(root)
  _fake_workdir(root, 'mnli', sub=gs.PREDICTION_DIRS[1], seed=3)
  gs.make_submission(workdirs, str(tmp_path / 'out'), test_sizes=SIZES)
  best = os.path.join(workdirs['mnli'], gs.PREDICTION_DIRS[0])
  for name in ('MNLI-m.tsv', 'AX.tsv'):
    assert _read(tmp_path / 'out' / name) == _read(os.path.join(best, name))
  # best/ lacking AX is reported, not filled in from the last evaluation.
  os.remove(os.path.join(best, 'AX.tsv'))
  with pytest.raises(gs.SubmissionError, match=r'no AX\.tsv in .*best'):
    gs.make_submission(workdirs, str(tmp_path / 'out2'), test_sizes=SIZES)


@pytest.mark.parametrize('name,row,message', [
    ('MNLI-m.tsv', ['5', '1'], r"prediction '1' is not one of \['entailment'"),
    ('RTE.tsv', ['5', 'neutral'], r"prediction 'neutral' is not one of"),
    ('CoLA.tsv', ['5', 'acceptable'], r"prediction 'acceptable' is not one of \['0', '1'\]"),
    ('STS-B.tsv', ['5', '5.5'], r"prediction '5\.5' is not a score in \[0, 5\]"),
    ('QQP.tsv', ['x', '1'], r"index 'x' is not a non-negative integer"),
    ('WNLI.tsv', ['1', '1'], r'index 1 appears twice'),
])
def test_malformed_files_are_named_even_when_partial(tmp_path, name, row,
                                                     message):
  workdirs = _all_workdirs(str(tmp_path / 'runs'))
  task, _ = gs.SUBMISSION_FILES[name]
  path = os.path.join(workdirs[task], gs.PREDICTION_DIRS[0], name)
  with open(path, 'a') as f:
    f.write('\t'.join(row) + '\n')
  sizes = dict(SIZES, **{name: N + 1})
  for partial in (False, True):
    with pytest.raises(gs.SubmissionError,
                       match=rf'{name} line {N + 2}: {message}'):
      gs.make_submission(workdirs, str(tmp_path / 'out'),
                         allow_partial=partial, test_sizes=sizes)


def test_bad_header_and_short_files(tmp_path):
  workdirs = _all_workdirs(str(tmp_path / 'runs'))
  # Short files (a run with max_eval_examples): the real test sizes.
  with pytest.raises(gs.SubmissionError,
                     match=r'CoLA\.tsv: 5 rows, but the GLUE test set has 1063'):
    gs.make_submission(workdirs, str(tmp_path / 'out'))
  assert len(gs.make_submission(workdirs, str(tmp_path / 'out'),
                                allow_partial=True)) == 12
  path = os.path.join(workdirs['qnli'], gs.PREDICTION_DIRS[0], 'QNLI.tsv')
  with open(path, 'w') as f:
    f.write('id\tlabel\n0\tentailment\n')
  with pytest.raises(gs.SubmissionError, match=r"QNLI\.tsv: the header must "
                     r"be \['index', 'prediction'\]"):
    gs.make_submission(workdirs, str(tmp_path / 'out'), allow_partial=True)


def test_workdir_specs_fail_loudly():
  with pytest.raises(ValueError, match=r"expected TASK=DIR"):
    gs.parse_workdirs(['cola'], None)
  with pytest.raises(ValueError, match=r"unknown GLUE task 'squad'"):
    gs.parse_workdirs(['squad=/x'], None)
  with pytest.raises(ValueError, match=r"'cola' given twice"):
    gs.parse_workdirs(['cola=/x', 'cola=/y'], None)


# --- The MNLI run predicts the diagnostic set (TFDS glue/ax). ---


@pytest.fixture
def tfds_mock():
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=16,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    yield


def test_mnli_task_reads_and_writes_ax(tok, tfds_mock, tmp_path, monkeypatch):
  config = finetune.get_config('task=mnli,runlocal')
  config.data.max_seq_length = SEQ
  config.data.eval_splits = ','.join(glue.EVAL_SPLITS['mnli'][:1]
                                     + glue.TEST_SPLITS['mnli'])
  task = registry.make_task(config, tok, tiny_model(tok))
  feats = task.eval_features()
  assert list(feats) == ['validation_matched', 'test_matched',
                         'test_mismatched', 'ax']
  logits = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
  out = {'logits': logits, 'example_index': feats['ax']['example_index']}
  # Unlabeled, as a test split.
  assert task.evaluate_split('ax', out, str(tmp_path)) == {}
  rows = _read(str(tmp_path / 'test' / 'AX.tsv'))
  assert rows[0] == ['index', 'prediction'] and len(rows) == 17
  assert {r[1] for r in rows[1:]} <= {'entailment', 'neutral', 'contradiction'}
  with pytest.raises(ValueError, match=r"glue/ax\) is predicted by the MNLI "
                     r"model only; config.task='rte'"):
    glue.load_examples('rte', 'ax')
  # 'ax' (sliced or not) opens glue/ax's only split, 'test'.
  tfds = pytest.importorskip('tensorflow_datasets')
  opened = []
  real = tfds.data_source
  monkeypatch.setattr(tfds, 'data_source', lambda name, split, **kw: (
      opened.append((name, split)) or real(name, split=split, **kw)))
  glue.load_examples('mnli', 'ax[:4]')
  assert opened == [('glue/ax', 'test[:4]')]


def test_mnli_run_through_trainer_gives_its_three_files(tiny_ckpt, tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  from bert_jax.train import trainer  # pylint: disable=g-import-not-at-top
  splits = ','.join(glue.EVAL_SPLITS['mnli'] + glue.TEST_SPLITS['mnli'])
  workdir = tmp_path / 'mnli'
  with tfds.testing.mock_data(num_examples=16,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    trainer.run(_config('mnli', tiny_ckpt, eval_splits=splits), str(workdir))
  best = workdir / 'best' / 'predictions' / 'test'
  assert sorted(os.listdir(best)) == ['AX.tsv', 'MNLI-m.tsv', 'MNLI-mm.tsv']
  # With the other tasks' files, it makes a whole submission.
  workdirs = _all_workdirs(str(tmp_path / 'runs'))
  workdirs['mnli'] = str(workdir)
  sizes = dict(SIZES, **{'MNLI-m.tsv': 16, 'MNLI-mm.tsv': 16, 'AX.tsv': 16})
  paths = gs.make_submission(workdirs, str(tmp_path / 'out'),
                             test_sizes=sizes)
  assert len(paths) == 12

