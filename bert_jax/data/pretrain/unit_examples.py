"""Pretraining examples of one work unit, built with array operations.

The same recipe as `bert_jax.data.pretrain.examples` (google-research/bert's
`create_pretraining_data.py`, ALBERT's for SOP, RoBERTa-style streams for
`mlm`; its docstring says what each objective does), made for corpus-scale
preparation: the unit's sentences are tokenized in one batch into flat arrays,
the recipe's decisions are made per sentence and per example on integer
offsets (never per token), and the rows are assembled with one gather. Two
things differ from `examples`, both for speed, neither in distribution:

* a pair too long is trimmed in closed form (the longer segment down to the
  shorter, then alternately, as BERT's `truncate_seq_pair` does) and the
  tokens cut from each segment's front are one binomial draw rather than a
  coin per token;
* randomness is a `random.Random` per (seed, unit, split), so every unit's
  examples depend on nothing else: any number of workers writes the same bytes.

NSP/SOP's random next segment comes from another document of the same unit,
as in Google's per-shard processing.

Shapes: T tokens of the unit, S sentences, D documents, N examples, L length.
"""

from __future__ import annotations

from collections.abc import Sequence
import random
from typing import Any

import numpy as np

from bert_jax.data.pretrain import objectives
from bert_jax.data.pretrain.examples import NO_WORD


class TokenDocs:
  """A unit's documents, tokenized, as flat arrays.

  ids_T / new_word_T: the tokens; sent_start (S + 1): where each sentence's
  tokens start (and the end); doc_sent (D + 1): where each document's
  sentences start. Empty sentences and documents are dropped.
  """

  def __init__(self, docs: Sequence[Sequence[str]], tokenizer: Any):
    flat = [s for d in docs for s in d]
    if hasattr(tokenizer, 'encode_flat'):
      ids, lengths, new_word = tokenizer.encode_flat(flat)
    else:  # A bare `encode_words` (test doubles).
      ids, lengths, new_word = _encode_flat_slow(tokenizer, flat)
    keep = lengths > 0
    sent_doc = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    sent_doc = sent_doc[keep]
    lengths = lengths[keep]
    self.ids_T = ids
    # Word keys: non-decreasing, +1 at every word start (sentences start one).
    self.word_T = np.cumsum(new_word, dtype=np.int32)
    self.sent_start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    counts = np.bincount(sent_doc, minlength=len(docs))
    counts = counts[counts > 0]
    self.doc_sent = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

  @property
  def num_docs(self) -> int:
    return len(self.doc_sent) - 1


def _encode_flat_slow(tokenizer, texts):
  ids, lengths, new_word = [], [], []
  for text in texts:
    t_ids, words = tokenizer.encode_words(text)
    ids.extend(t_ids)
    lengths.append(len(t_ids))
    new_word.extend(i == 0 or words[i] != words[i - 1]
                    for i in range(len(words)))
  return (np.asarray(ids, np.int32), np.asarray(lengths, np.int64),
          np.asarray(new_word, bool))


def create_examples(docs: TokenDocs, *, max_seq_length: int, objective: str,
                    short_seq_prob: float, dupe_factor: int,
                    rng: random.Random, cls_id: int, sep_id: int,
                    pad_id: int) -> dict[str, np.ndarray]:
  """The unit's examples, as `examples.create_examples` returns them."""
  obj = objectives.get(objective)
  n_special = 3 if obj.pairs else 2
  if max_seq_length < n_special + 2:
    raise ValueError(f'max_seq_length={max_seq_length} is too small for '
                     f'objective {objective!r}; need >= {n_special + 2}')
  max_tokens = max_seq_length - n_special
  if docs.num_docs == 0:
    return _assemble(docs.ids_T, docs.word_T, None, np.zeros((0, 5), np.int64),
                     max_seq_length, cls_id, sep_id, pad_id, obj.pairs)
  order = list(range(docs.num_docs))
  rng.shuffle(order)
  if obj.pairs:
    spans = []
    starts = docs.sent_start.tolist()
    bounds = [(docs.doc_sent[d], docs.doc_sent[d + 1]) for d in order]
    bounds = [(int(a), int(b)) for a, b in bounds]
    for _ in range(dupe_factor):
      for k in range(len(bounds)):
        _pair_spans(bounds, k, starts, max_tokens, short_seq_prob,
                    obj.sentence_head, rng, spans)
    rng.shuffle(spans)
    return _assemble(docs.ids_T, docs.word_T, None, np.asarray(
        spans, np.int64).reshape(-1, 5), max_seq_length, cls_id, sep_id,
                     pad_id, True)
  parts = []
  for _ in range(dupe_factor):
    parts.append(_stream_examples(docs, order, max_tokens, short_seq_prob,
                                  sep_id, rng, max_seq_length, cls_id, pad_id))
    rng.shuffle(order)
  out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  perm = _permutation(rng, len(out['input_ids']))
  return {k: v[perm] for k, v in out.items()}


def _permutation(rng: random.Random, n: int) -> np.ndarray:
  return np.random.default_rng(rng.getrandbits(64)).permutation(n)


def _pair_spans(bounds, k, starts, max_tokens, short_seq_prob, head, rng, out):
  """BERT's `create_instances_from_document` on sentence offsets.

  Appends (a0, a1, b0, b1, label) token ranges to OUT.
  """
  lo, hi = bounds[k]
  target = max_tokens
  if rng.random() < short_seq_prob:
    target = rng.randint(2, max_tokens)
  chunk_start, chunk_len, i = lo, 0, lo
  while i < hi:
    chunk_len += starts[i + 1] - starts[i]
    if i == hi - 1 or chunk_len >= target:
      n_chunk = i - chunk_start + 1
      a_end = rng.randint(1, n_chunk - 1) if n_chunk >= 2 else 1
      a0, a1 = starts[chunk_start], starts[chunk_start + a_end]
      if n_chunk == 1 or (head == 'nsp' and rng.random() < 0.5):
        label = 1
        b0, b1 = _random_b(bounds, k, starts, target - (a1 - a0), rng)
        i -= n_chunk - a_end  # The unused sentences start the next example.
      else:
        b0, b1, label = a1, starts[i + 1], 0
        if head == 'sop' and rng.random() < 0.5:
          a0, a1, b0, b1, label = b0, b1, a0, a1, 1
      out.append(_trim(a0, a1, b0, b1, max_tokens, rng) + (label,))
      chunk_start, chunk_len = i + 1, 0
    i += 1


def _random_b(bounds, k, starts, target, rng):
  """Segment B from another document, from a random sentence on."""
  for _ in range(10):  # The original's bounded retry: one doc can't loop.
    other = rng.randint(0, len(bounds) - 1)
    if other != k:
      break
  lo, hi = bounds[other]
  s = rng.randint(lo, hi - 1)
  b0 = starts[s]
  while True:
    s += 1
    if s == hi or starts[s] - b0 >= target:
      return b0, starts[s]


def _trim(a0, a1, b0, b1, max_tokens, rng):
  """`truncate_seq_pair` in closed form: which end is a binomial draw."""
  la, lb = a1 - a0, b1 - b0
  excess = la + lb - max_tokens
  if excess <= 0:
    return a0, a1, b0, b1
  # The longer loses tokens until the two are equal, then B and A take turns
  # (B first: a tie trims B, as in the original).
  cut_a = min(excess, max(la - lb, 0))
  cut_b = min(excess, max(lb - la, 0))
  rest = excess - cut_a - cut_b
  cut_b += (rest + 1) // 2
  cut_a += rest // 2
  front_a = _heads(rng, cut_a)
  front_b = _heads(rng, cut_b)
  return (a0 + front_a, a1 - (cut_a - front_a),
          b0 + front_b, b1 - (cut_b - front_b))


def _heads(rng: random.Random, n: int) -> int:
  """Binomial(n, 1/2): heads among n fair coins, from n random bits."""
  return bin(rng.getrandbits(n)).count('1') if n else 0


def _stream_examples(docs, order, max_tokens, short_seq_prob, sep_id, rng,
                     length, cls_id, pad_id):
  """`mlm`: single segments cut from one stream of the documents, a [SEP]
  between documents (see `examples._packed_examples`)."""
  pieces, words = [], []
  for j, d in enumerate(order):
    t0 = docs.sent_start[docs.doc_sent[d]]
    t1 = docs.sent_start[docs.doc_sent[d + 1]]
    if j:
      pieces.append(np.array([sep_id], np.int32))
      words.append(np.array([-1], np.int32))
    pieces.append(docs.ids_T[t0:t1])
    words.append(np.diff(docs.word_T[t0 - 1:t1]) if t0 else
                 np.diff(np.concatenate([[0], docs.word_T[:t1]])))
  ids = np.concatenate(pieces)
  new_word = np.concatenate(words)  # 1 word start, 0 inside, -1 a [SEP]
  is_word = new_word >= 0
  word = np.cumsum(np.maximum(new_word, 0), dtype=np.int32)
  spans, start, n = [], 0, len(ids)
  while start < n:
    if not is_word[start]:  # A row never starts with a document [SEP].
      start += 1
      continue
    target = max_tokens
    if rng.random() < short_seq_prob:
      target = rng.randint(2, max_tokens)
    end = min(start + target, n)
    spans.append((start, end, 0, 0, 0))
    start = end
  return _assemble(ids, word, is_word, np.asarray(spans, np.int64).reshape(
      -1, 5), length, cls_id, sep_id, pad_id, False)


def _assemble(ids, word, is_word, spans, length, cls_id, sep_id, pad_id,
              pairs):
  """`[CLS] A [SEP] (B [SEP])` rows from (a0, a1, b0, b1, label) spans."""
  n = len(spans)
  # int32 offsets (a unit holds far fewer than 2**31 tokens): half the bytes.
  spans = spans.astype(np.int32)
  a0, a1, b0, b1, label = (spans[:, j:j + 1] for j in range(5))
  la, lb = a1 - a0, b1 - b0
  pos = np.arange(length, dtype=np.int32)[None, :]
  in_a = (pos >= 1) & (pos <= la)
  src = a0 + pos - 1
  sep = pos == la + 1
  end = la + 2
  if pairs:
    b_at = la + 2
    in_b = (pos >= b_at) & (pos < b_at + lb)
    src = np.where(in_b, b0 + pos - b_at, src)
    sep |= pos == b_at + lb
    end = b_at + lb + 1
  else:
    in_b = np.zeros((n, length), bool)
  in_text = in_a | in_b
  src = np.where(in_text, src, 0)
  if len(ids) == 0:
    src[:] = 0
    ids, word = np.zeros(1, np.int32), np.zeros(1, np.int64)
  input_ids = np.where(in_text, ids[src], pad_id).astype(np.int32)
  input_ids[sep] = sep_id
  if n:
    input_ids[:, 0] = cls_id
  w = word[src]
  words_a = w - word[np.minimum(a0, len(word) - 1)]
  n_words_a = word[np.maximum(a1 - 1, 0)] - word[np.minimum(a0, len(word) - 1)] + 1
  words_b = w - word[np.minimum(b0, len(word) - 1)] + n_words_a
  words = np.where(in_b, words_b, words_a)
  real_word = in_text if is_word is None else in_text & is_word[src]
  out = {
      'input_ids': input_ids,
      'token_type_ids': (in_b | (sep & (pos > la + 1))).astype(np.int32),
      'attention_mask': (pos < end).astype(np.int32),
      'word_ids': np.where(real_word, words, NO_WORD).astype(np.int32),
      'nsp_label': label[:, 0].astype(np.int32),
  }
  return out
