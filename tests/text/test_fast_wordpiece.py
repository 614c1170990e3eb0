"""The fast batch encoder gives the reference tokenizer's ids, line for line,
on text built to find differences (accents in every normal form, CJK, Hangul,
emoji, control and zero-width characters, words around the 100- and
200-character limits, typed special tokens, odd whitespace)."""

import random
import unicodedata

import numpy as np
import pytest

from bert_jax.text import fast_wordpiece
from bert_jax.text import wordpiece

ACCENTED = 'àáâãäåèéêëìíîïòóôõöùúûüýÿñçÀÉÎÕÜŠŽœæøßİıŁłđĐǅǈǋﬁﬂΩω'
CJK = '中文字符测试日本語のテキスト한국어텍스트漢字假名カタカナ'
ODD = ['\x00', '\x01', '\x07', '\x1b', '\x7f', '\x85', '\u200b', '\u200c',
       '\u200d', '\ufeff', '\u00ad', '\u2028', '\u00a0', '\u3000', '\t', '\r',
       '\ufffd', '\u0301', '\u0300', '\U000e0001', '\u0ada']
SEPS = [' ', '  ', '\t', '\u00a0', '\u3000', '\u2003', '\x0b', '\x0c', '\r',
        '\u200b']
WORDS = ['the', 'unaffable', "don't", 'naïve', 'x=1;', 'HTTP/2', 'e-mail',
         '3.14159', '[MASK]', '[SEP]', '[mask]', '[CLS]x', 'ÅNGSTRÖM']


def _hard_lines(n, seed=0):
  rng = random.Random(seed)
  lines = ['', ' ', '\t\r', 'a' * 100, 'a' * 101, 'a' * 200, 'a' * 201,
           'é' * 150, '한국어', '😀👍🏽👨‍👩‍👧🇫🇷']
  while len(lines) < n:
    parts = []
    for _ in range(rng.randint(1, 20)):
      r = rng.random()
      if r < 0.3:
        w = rng.choice(WORDS)
      elif r < 0.5:
        w = ''.join(rng.choice(ACCENTED + 'abc') for _ in range(rng.randint(1, 9)))
        w = unicodedata.normalize(rng.choice(['NFC', 'NFD', 'NFKC', 'NFKD']), w)
      elif r < 0.6:
        w = ''.join(rng.choice(CJK) for _ in range(rng.randint(1, 6)))
      elif r < 0.7:
        w = rng.choice(WORDS) + rng.choice(ODD) + rng.choice(WORDS)
      elif r < 0.78:
        w = 'q' * rng.choice([99, 100, 101, 199, 200, 201, 300])
      elif r < 0.88:
        w = ''.join(chr(rng.randrange(0x20, 0x30000)) for _ in range(4))
        w = ''.join(c for c in w if not 0xd800 <= ord(c) < 0xe000)
      else:
        w = ''.join(rng.choice('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~¿«»—…')
                    for _ in range(rng.randint(1, 4)))
      parts.append(w + rng.choice(SEPS))
    line = ''.join(parts)
    lines.append(line.upper() if rng.random() < 0.2 else line)
  return lines


def _reference(vocab_file, lines, do_lower_case):
  ref = wordpiece.make_encode_batch(
      vocab_file, do_lower_case, engine='tokenizers')
  assert ref.engine == 'tokenizers'
  return ref(lines)


def _assert_same(got, want, lines):
  ids, offsets = got
  ref_ids, ref_offsets = want
  assert ids.dtype == np.int32 and offsets.dtype == np.int64
  assert offsets.shape == (len(lines) + 1,) and offsets[0] == 0
  if not (np.array_equal(offsets, ref_offsets) and np.array_equal(ids, ref_ids)):
    rows = fast_wordpiece.split_rows(ids, offsets)
    ref_rows = fast_wordpiece.split_rows(ref_ids, ref_offsets)
    bad = [i for i in range(len(lines))
           if not np.array_equal(rows[i], ref_rows[i])]
    pytest.fail(f'{len(bad)} of {len(lines)} lines differ; first: '
                f'{lines[bad[0]]!r}: {rows[bad[0]]} != {ref_rows[bad[0]]}')


def test_reference_engine_matches_the_tokenizer(vocab_file, wp_tok):
  lines = _hard_lines(300)
  ids, offsets = _reference(vocab_file, lines, True)
  rows = fast_wordpiece.split_rows(ids, offsets)
  for line, row in zip(lines, rows):
    assert row.tolist() == wp_tok.encode_words(line)[0], repr(line)


@pytest.mark.parametrize('do_lower_case', [True, False])
def test_nanotoken_matches_reference(vocab_file, do_lower_case):
  pytest.importorskip('nanotoken')
  lines = _hard_lines(3000, seed=int(do_lower_case))
  fast = wordpiece.make_encode_batch(
      vocab_file, do_lower_case, engine='nanotoken')
  assert fast.engine == 'nanotoken'
  want = _reference(vocab_file, lines, do_lower_case)
  _assert_same(fast(lines), want, lines)
  # Its word cache is warm on the second pass, and batches can be any size.
  _assert_same(fast(lines), want, lines)
  parts = [fast(lines[i:i + 7]) for i in range(0, len(lines), 7)]
  ids = np.concatenate([p[0] for p in parts])
  assert np.array_equal(ids, want[0])


def test_auto_picks_an_engine_and_handles_empty_input(vocab_file):
  fn = wordpiece.make_encode_batch(vocab_file)
  assert fn.engine in ('nanotoken', 'tokenizers')
  ids, offsets = fn([])
  assert ids.shape == (0,) and offsets.tolist() == [0]


def test_unknown_engine_is_refused(vocab_file):
  with pytest.raises(ValueError, match='engine must be one of'):
    wordpiece.make_encode_batch(vocab_file, engine='flash')
