"""Tokenizer training: specials, determinism, errors and exports.

The command line, which reads corpora, is tested in
tests/data/pretrain/test_tokenizer_cli.py.
"""

import filecmp
import os

import pytest

from bert_jax import text
from bert_jax.text import train_tokenizer as train_lib

SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']


def _check_specials(tok):
  assert [tok.id_to_token(i) for i in range(5)] == SPECIALS
  assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (
      0, 1, 2, 3, 4)


def test_train_wordpiece(corpus, tmp_path):
  tok = text.train_wordpiece(corpus, vocab_size=500, out_dir=str(tmp_path))
  assert isinstance(tok, text.WordPieceTokenizer)
  assert sorted(os.listdir(tmp_path)) == ['tokenizer_config.json', 'vocab.txt']
  _check_specials(tok)
  assert 200 < tok.vocab_size <= 500
  enc = tok.encode('The Return statement returns a value.', 'Next one.')
  assert enc.input_ids[0] == 2 and enc.input_ids.count(3) == 2
  assert tok.unk_id not in enc.input_ids  # All these characters were seen.
  assert tok.decode(enc.input_ids).startswith('the return statement')
  assert isinstance(text.load_tokenizer(str(tmp_path)), text.WordPieceTokenizer)


def test_train_sentencepiece(corpus, tmp_path):
  tok = text.train_sentencepiece(corpus, vocab_size=400, out_dir=str(tmp_path))
  assert isinstance(tok, text.SentencePieceTokenizer)
  assert sorted(os.listdir(tmp_path)) == [
      'spiece.model', 'tokenizer_config.json']
  _check_specials(tok)
  assert tok.vocab_size == 400
  enc = tok.encode('The return statement returns a value.', 'Next one.')
  assert enc.input_ids[0] == 2 and enc.input_ids.count(3) == 2
  assert tok.decode(enc.input_ids) == (
      'The return statement returns a value. Next one.')
  # [MASK] is a control symbol: typing it in text does not produce id 4.
  assert tok.mask_id not in tok.encode('[MASK]').input_ids


def test_train_wordpiece_limit_alphabet(corpus, tmp_path):
  tok = text.train_wordpiece(corpus + ['ééé rare'], 300,
                             str(tmp_path), limit_alphabet=30)
  singles = [tok.id_to_token(i) for i in range(5, 35)]
  assert all(len(t) == 1 for t in singles)
  assert tok.id_to_token(35) == '##' + singles[0]
  # 'e' is frequent, accented characters are stripped by lower-casing, and
  # nothing outside the 30 kept characters ever appears in a piece.
  assert 'e' in singles and 'é' not in singles
  for i in range(tok.vocab_size):
    assert set(tok.id_to_token(i).removeprefix('##')) <= set(singles) or i < 5


def test_train_lowercase(corpus, tmp_path):
  wp = text.train_wordpiece(corpus, 300, str(tmp_path / 'wp'),
                            do_lower_case=False)
  assert not wp.do_lower_case
  assert wp.encode('The').input_ids != wp.encode('the').input_ids
  sp = text.train_sentencepiece(corpus, 300, str(tmp_path / 'sp'),
                                do_lower_case=True)
  assert sp.do_lower_case
  assert sp.encode('The THE').input_ids == sp.encode('the the').input_ids
  assert text.load_tokenizer(str(tmp_path / 'sp')).do_lower_case


@pytest.mark.parametrize('kind,files', [
    ('wordpiece', ['vocab.txt']),
    ('sentencepiece', ['spiece.model']),
])
def test_training_is_deterministic(corpus, tmp_path, kind, files):
  # A generator, as a corpus reader would pass.
  for run in ('a', 'b'):
    train_lib.train_tokenizer(kind, (s for s in corpus), 400,
                              str(tmp_path / run))
  for f in files:
    assert filecmp.cmp(tmp_path / 'a' / f, tmp_path / 'b' / f, shallow=False)


def test_train_tokenizer_errors(corpus, tmp_path):
  with pytest.raises(ValueError, match=r"'bpe'.*sentencepiece.*wordpiece"):
    train_lib.train_tokenizer('bpe', corpus, 100, str(tmp_path))
  with pytest.raises(ValueError, match='vocab_size must be >= 10, got 3'):
    train_lib.train_tokenizer('wordpiece', corpus, 3, str(tmp_path))


def test_package_exports():
  assert text.train_wordpiece is train_lib.train_wordpiece
  assert text.train_sentencepiece is train_lib.train_sentencepiece
  # The submodule, not hidden by its function of the same name.
  assert text.train_tokenizer is train_lib
