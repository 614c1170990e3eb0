"""Bad input, swept (1/3): broken task files, CoNLL, SQuAD and corpus files
give one line naming the file and line and what was expected. The readers are
called directly (milliseconds each). tests/test_bad_input_models.py has
checkpoints, tokenizers, prepared shards, TFDS and config values;
tests/test_bad_input_launch.py what the user sees through launch.py."""

from __future__ import annotations

import json
import os
import time

import pytest

from bert_jax.data.finetune import conll
from bert_jax.data.pretrain import corpora
from bert_jax.data.finetune import local_files
from bert_jax.data.finetune import squad_readers
from bert_jax.errors import InputFileNotFoundError
from tests.bad_input_table import BIG, BOM, LATIN1, Case, outcome_table  # noqa: F401 (a fixture)
from tests.bad_input_table import fails as _fails
from tests.bad_input_table import run_case
from tests.bad_input_table import write as _write


def _tsv(d, name, data, **kw):
  return lambda: local_files.read_file(_write(d, name, data), ('sentence',),
                                       'label', kw.get('regression', False))


# --- TSV / CSV / JSONL task files (bert_jax/data/finetune/local_files.py). ---


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


# --- CoNLL (bert_jax/data/finetune/conll.py). ---


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


# --- SQuAD JSON (bert_jax/data/finetune/squad_readers.py). ---

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


# --- Pretraining corpora (bert_jax/data/pretrain/corpora.py). ---


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
]


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_line(case, tmp_path):
  run_case(case, tmp_path)
