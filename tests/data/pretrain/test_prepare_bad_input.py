"""Bad input to `python -m bert_jax.data.pretrain.prepare`: one line, exit 2,
and no directory that looks complete (no meta.json)."""

import os
import time

import pytest

from bert_jax.data.pretrain import prepare

GOOD = ('The first sentence of a document.\nIts second sentence follows.\n\n'
        'Another document starts here.\nIt has two sentences too.\n\n')


def _run(corpus, vocab, out, *extra):
  return prepare.main(['--corpus', str(corpus), '--tokenizer', vocab,
                       '--out', str(out), '--workers', '1', '--quiet',
                       '--max_seq_length', '32', *extra])


def _fails(capsys, corpus, vocab, out, *extra):
  with pytest.raises(SystemExit) as e:
    _run(corpus, vocab, out, *extra)
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('error: '), err
  assert not os.path.exists(os.path.join(out, prepare.META_FILE))
  return err[0]


def test_bytes_that_are_not_utf8_fail_with_file_and_line_or_are_replaced(
    tmp_path, real_vocab_path, capsys):
  corpus = tmp_path / 'latin1.txt'
  corpus.write_bytes(GOOD.encode() + 'Un caf\xe9 cr\xe8me.\nEt du th\xe9.\n'
                     .encode('latin-1'))
  err = _fails(capsys, corpus, real_vocab_path, tmp_path / 'a')
  assert f'{corpus}:7:' in err and '0xE9, not UTF-8' in err
  meta = _run(corpus, real_vocab_path, tmp_path / 'b', '--invalid_utf8',
              'replace')
  assert meta['replaced_bytes'] == 3
  assert meta['splits']['train']['num_examples'] > 0


def test_a_corpus_with_no_usable_sentences(tmp_path, real_vocab_path, capsys):
  corpus = tmp_path / 'blank.txt'
  corpus.write_text('\n   \n\t\n\n')
  err = _fails(capsys, corpus, real_vocab_path, tmp_path / 'out')
  assert 'gave no training examples' in err and '0 documents' in err


def test_a_10mb_line_is_skipped_and_counted_quickly(tmp_path, real_vocab_path):
  corpus = tmp_path / 'long.txt'
  corpus.write_text(GOOD + 'x' * (10 << 20) + '\n\n' + GOOD)
  t0 = time.perf_counter()
  meta = _run(corpus, real_vocab_path, tmp_path / 'out')
  assert time.perf_counter() - t0 < 60
  assert meta['long_lines'] == 1
  assert meta['splits']['train']['num_documents'] == 4


def test_missing_file_or_empty_glob(tmp_path, real_vocab_path, capsys):
  err = _fails(capsys, tmp_path / 'nope.txt', real_vocab_path, tmp_path / 'a')
  assert 'nope.txt' in err and 'matches no file' in err
  err = _fails(capsys, tmp_path / 'none-*.txt', real_vocab_path, tmp_path / 'b')
  assert 'none-*.txt' in err
  assert not os.path.exists(tmp_path / 'a') and not os.path.exists(tmp_path / 'b')


def test_unknown_tfds_dataset(tmp_path, real_vocab_path, capsys):
  err = _fails(capsys, 'tfds:no_such_dataset_xyz', real_vocab_path,
               tmp_path / 'out', '--data_dir', str(tmp_path / 'tfds'))
  assert 'no_such_dataset_xyz' in err
  assert not os.path.exists(tmp_path / 'out')


def test_bad_flag_values(tmp_path, real_vocab_path, capsys):
  corpus = tmp_path / 'good.txt'
  corpus.write_text(GOOD)
  err = _fails(capsys, corpus, real_vocab_path, tmp_path / 'a', '--workers',
               '0')
  assert '--workers must be >= 1' in err
  err = _fails(capsys, corpus, real_vocab_path, tmp_path / 'b',
               '--max_examples_per_row', '0')
  assert '1 = no packing' in err


def test_an_eval_fraction_that_holds_out_nothing(tmp_path, real_vocab_path,
                                                 capsys):
  corpus = tmp_path / 'good.txt'
  corpus.write_text(GOOD)
  err = _fails(capsys, corpus, real_vocab_path, tmp_path / 'a',
               '--eval_fraction', '1e-6')
  assert '--eval_fraction=1e-06 held out none of the 2 documents' in err


def test_max_line_bytes_counts_bytes_not_characters(tmp_path, real_vocab_path):
  corpus = tmp_path / 'cjk.txt'
  corpus.write_text(GOOD + '中' * 400 + '\n\n' + GOOD)  # 400 chars, 1,200 bytes
  meta = _run(corpus, real_vocab_path, tmp_path / 'out', '--max_line_bytes',
              '1000')
  assert meta['long_lines'] == 1
