"""Layout, word ids, truncation and batching, for both tokenizer kinds."""

import itertools
import pickle

import numpy as np
import pytest

from bert_jax.text import base


@pytest.fixture(params=['wordpiece', 'sentencepiece'])
def tok(request, wp_tok, sp_tok):
  return {'wordpiece': wp_tok, 'sentencepiece': sp_tok}[request.param]


def _pop_loop(n_a, n_b, budget):
  """BERT's _truncate_seq_pair, literally."""
  while n_a + n_b > budget:
    if n_a > n_b:
      n_a -= 1
    else:
      n_b -= 1
  return n_a, n_b


def test_truncate_longest_first_matches_bert_loop():
  for n_a, n_b, budget in itertools.product(range(10), range(10), range(20)):
    assert base.truncate_longest_first(
        [0] * n_a, [0] * n_b, budget) == _pop_loop(n_a, n_b, budget)


def test_word_ids_wordpiece(wp_tok):
  enc = wp_tok.encode('unaffable dogs', 'xyzzyplugh runs')
  pieces = [wp_tok.id_to_token(i) for i in enc.input_ids]
  assert pieces[:4] == ['[CLS]', 'una', '##ffa', '##ble']
  # 'unaffable' is word 0 in three pieces; B's words continue after A's.
  assert enc.word_ids[:5] == [-1, 0, 0, 0, 1]
  assert enc.word_ids[5] == -1 and pieces[5] == '[SEP]'
  b_words = enc.word_ids[6:-1]
  assert b_words[0] == 2 and b_words[-1] == 3 and len(b_words) > 2
  assert enc.word_ids[-1] == -1


def test_wordpiece_long_words_follow_the_original_limit(wp_tok):
  # The original tokenization.py: [UNK] past 200 characters (not 100).
  for n in (101, 150, 200):
    pieces = wp_tok.tokenize('a' * n)
    assert '[UNK]' not in pieces and ''.join(pieces).replace('##', '') == 'a' * n
  assert wp_tok.tokenize('x ' + 'a' * 201 + ' y') == ['x', '[UNK]', 'y']


def test_word_ids_punctuation_is_a_word(wp_tok):
  ids, words = wp_tok.encode_words('Hello, world!')
  assert [wp_tok.id_to_token(i) for i in ids] == ['hello', ',', 'world', '!']
  assert words == [0, 1, 2, 3]


def test_word_ids_sentencepiece(sp_tok):
  ids, words = sp_tok.encode_words('the definition of identifiers')
  pieces = [sp_tok.id_to_token(i) for i in ids]
  assert words[0] == 0 and words[-1] == 3
  for piece, w, prev in zip(pieces[1:], words[1:], words):
    assert w == prev + piece.startswith('\u2581'), pieces


def test_word_ids_invariants(tok):
  enc = tok.encode('Some words, then more.', 'And a second text here.')
  for i, w in zip(enc.input_ids, enc.word_ids):
    assert (w == -1) == (i in (tok.cls_id, tok.sep_id)), enc
  real = [w for w in enc.word_ids if w >= 0]
  assert real == sorted(real) and real[0] == 0
  assert set(real) == set(range(real[-1] + 1))  # Contiguous.


def test_word_ids_of_b_count_truncated_words_of_a(tok):
  full = tok.encode('one two three four five six', 'seven eight')
  cut = tok.encode('one two three four five six', 'seven eight', max_length=7)
  b_full = [w for w, t in zip(full.word_ids, full.token_type_ids) if t == 1]
  b_cut = [w for w, t in zip(cut.word_ids, cut.token_type_ids) if t == 1]
  assert b_cut[0] == b_full[0]


def test_layout(tok):
  enc = tok.encode('a b', 'c')
  assert enc.input_ids[0] == tok.cls_id and enc.input_ids[-1] == tok.sep_id
  assert enc.input_ids.count(tok.sep_id) == 2
  assert enc.attention_mask == [1] * len(enc)
  first_b = enc.token_type_ids.index(1)
  assert enc.input_ids[first_b - 1] == tok.sep_id
  assert set(enc.token_type_ids[first_b:]) == {1}


def test_empty_texts(tok):
  assert tok.encode('').input_ids == [tok.cls_id, tok.sep_id]
  assert tok.encode('', '').input_ids == [tok.cls_id, tok.sep_id, tok.sep_id]


def test_pad_to(tok):
  enc = tok.encode('a b c', pad_to=12)
  n = tok.encode('a b c')
  real = len(n)
  assert len(enc) == 12
  assert enc.input_ids[:real] == n.input_ids
  assert enc.input_ids[real:] == [tok.pad_id] * (12 - real)
  assert enc.attention_mask == [1] * real + [0] * (12 - real)
  assert enc.token_type_ids[real:] == [0] * (12 - real)
  assert enc.word_ids[real:] == [-1] * (12 - real)
  with pytest.raises(ValueError, match='pad_to=2'):
    tok.encode('a b c', pad_to=2)


def test_max_length_too_small(tok):
  with pytest.raises(ValueError, match='max_length=2'):
    tok.encode('a', 'b', max_length=2)
  assert len(tok.encode('a b c d', max_length=2)) == 2


def test_encode_batch(tok):
  texts = ['a short one', 'a much longer text with quite a few more words']
  batch = tok.encode_batch(texts)
  assert set(batch) == {'input_ids', 'token_type_ids', 'attention_mask',
                        'word_ids'}
  longest = max(len(tok.encode(t)) for t in texts)
  for v in batch.values():
    assert v.dtype == np.int32 and v.shape == (2, longest)
  for row, t in enumerate(texts):
    assert batch['input_ids'][row].tolist() == tok.encode(
        t, pad_to=longest).input_ids
    assert batch['word_ids'][row].tolist() == tok.encode(
        t, pad_to=longest).word_ids
  assert batch['attention_mask'].sum() == sum(len(tok.encode(t)) for t in texts)


def test_encode_batch_padding_options(tok):
  texts = ['one', 'one two three four five']
  longest = len(tok.encode(texts[1]))
  assert tok.encode_batch(texts, pad_to_multiple_of=8)['input_ids'].shape == (
      2, -(-longest // 8) * 8)
  assert tok.encode_batch(texts, pad_to=32)['input_ids'].shape == (2, 32)
  assert tok.encode_batch(texts, max_length=4)['input_ids'].shape == (2, 4)
  with pytest.raises(ValueError, match='pad_to_multiple_of'):
    tok.encode_batch(texts, pad_to_multiple_of=0)
  with pytest.raises(ValueError, match='pad_to=3'):
    tok.encode_batch(texts, pad_to=3)


def test_encode_batch_pairs(tok):
  pairs = [('what is it', 'it is a thing'), ('who', 'nobody knows at all')]
  batch = tok.encode_batch(pairs, max_length=8, pad_to=10)
  for row, (a, b) in enumerate(pairs):
    enc = tok.encode(a, b, max_length=8, pad_to=10)
    assert batch['input_ids'][row].tolist() == enc.input_ids
    assert batch['token_type_ids'][row].tolist() == enc.token_type_ids
    assert batch['word_ids'][row].tolist() == enc.word_ids
  with pytest.raises(ValueError, match='mix'):
    tok.encode_batch(['a', ('b', 'c')])


def test_encode_batch_empty(tok):
  assert tok.encode_batch([])['input_ids'].shape == (0, 0)


def test_vocab_lookups(tok):
  for i in sorted(tok.special_ids):
    assert tok.token_to_id(tok.id_to_token(i)) == i
  assert tok.special_ids == {tok.pad_id, tok.unk_id, tok.cls_id, tok.sep_id,
                             tok.mask_id}
  assert len(tok.special_ids) == 5
  assert tok.token_to_id('no-such-piece-anywhere') == tok.unk_id
  with pytest.raises(ValueError, match=str(tok.vocab_size)):
    tok.id_to_token(tok.vocab_size)


def test_decode(tok):
  enc = tok.encode('the cat sat', 'on the mat')
  assert tok.decode(enc.input_ids) .split() == 'the cat sat on the mat'.split()
  kept = tok.decode(enc.input_ids, skip_special_tokens=False)
  assert kept.startswith(tok.id_to_token(tok.cls_id))
  assert kept.count(tok.id_to_token(tok.sep_id)) == 2


def test_pickles(tok):
  # Multi-worker data loaders pickle the tokenizer into each worker.
  clone = pickle.loads(pickle.dumps(tok))
  assert clone.encode('pickle me', 'please') == tok.encode('pickle me',
                                                           'please')
