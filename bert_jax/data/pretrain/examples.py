"""Pretraining examples from documents, the way the original BERT makes them.

This follows `create_pretraining_data.py` of google-research/bert (and, for
sentence-order prediction, ALBERT's version of it) step for step, with
Python's `random.Random(seed)` as the source of randomness:

* Documents are shuffled, then each is cut into examples `dupe_factor` times
  (with fresh randomness each time), and all examples are shuffled.
* Examples aim at `max_seq_length - 3` tokens (`- 2` for single segments,
  `mlm`); with probability `short_seq_prob` at a random length in [2, that]
  instead, so the model also sees short inputs. As in the original, the draw
  is made once per document and pass (per example for `mlm`).
* Whole sentences are gathered until the target is reached; a random number of
  them (at least one) form segment A, the rest B.
* What differs between objectives (the `description`s of
  `bert_jax.data.pretrain.objectives`): with `mlm_nsp`, half of the time (always when
  only one sentence was gathered) B is instead taken from a random other
  document, label 1, and the sentences not used are put back for the next
  example; label 0 means B really follows A. With `mlm_sop`, half of the time
  A and B swap places, label 1; as in ALBERT, an example of a single sentence
  takes B from a random other document (label 1). `mlm` (not in the
  original, which always makes pairs) makes one segment, no label (always 0),
  cut from one stream of all the documents, RoBERTa-style
  (`_packed_examples`), so rows are full: `[CLS] tokens [SEP]`.
* A pair too long is cut one token at a time from the longer segment, at its
  front or back at random.

Only the masking is left out: it happens on device at every step
(`bert_jax.data.pretrain.masking`), so each epoch sees new masks. To make that possible
each example keeps `word_ids`, the word each token came from.

Most examples aim at the full length, which keeps padding down. The pair
objectives pad more than `mlm`, because the original cuts an example at the
end of every document (only `mlm`'s short targets pad): a corpus of short
documents, such as the builtin one, pads much more than one of long documents,
such as Wikipedia. `padding_fraction` measures it; figures measured on the
builtin corpus are in docs/pretraining.md.

Shapes: N = number of examples, L = max_seq_length.
"""

from collections.abc import Iterable, Sequence
import random
from typing import Any

import numpy as np

from bert_jax.data.pretrain import objectives
# Word index of [CLS], [SEP] and padding: the tokenizers' own, so word_ids
# from encode_batch and from these examples agree.
from bert_jax.text.base import NO_WORD

FEATURES = ('input_ids', 'token_type_ids', 'attention_mask', 'word_ids',
            'nsp_label')
# One sentence, tokenized: (ids, word index of each id, 0-based in sentence).
Sentence = tuple[list[int], list[int]]


def documents_to_token_docs(docs: Iterable[Sequence[str]],
                            tokenizer: Any) -> list[list[Sentence]]:
  """Tokenizes every sentence once, keeping each token's word index.

  Args:
    docs: Documents, each a sequence of sentence strings.
    tokenizer: A `bert_jax.text.Tokenizer` (anything with `encode_words`;
      `encode_words_batch` is used when present, as it may run in parallel).

  Returns:
    Per document, its non-empty sentences as `(ids, word_ids)`. Sentences that
    tokenize to nothing and documents left empty are dropped.
  """
  docs = [list(d) for d in docs]
  flat = [s for d in docs for s in d]
  if hasattr(tokenizer, 'encode_words_batch'):
    encoded = tokenizer.encode_words_batch(flat)
  else:
    encoded = [tokenizer.encode_words(s) for s in flat]
  token_docs, start = [], 0
  for doc in docs:
    sentences = [(list(ids), list(words))
                 for ids, words in encoded[start:start + len(doc)] if ids]
    start += len(doc)
    if sentences:
      token_docs.append(sentences)
  return token_docs


def create_examples(token_docs: Sequence[Sequence[Sentence]],
                    *,
                    max_seq_length: int,
                    objective: str = 'mlm_nsp',
                    short_seq_prob: float = 0.1,
                    dupe_factor: int = 1,
                    seed: int = 0,
                    cls_id: int,
                    sep_id: int,
                    pad_id: int) -> dict[str, np.ndarray]:
  """Cuts tokenized documents into fixed-length pretraining examples.

  Args:
    token_docs: Output of `documents_to_token_docs`.
    max_seq_length: L, the length of every example, specials included.
    objective: A name in `bert_jax.data.pretrain.objectives.NAMES`.
    short_seq_prob: Probability of aiming at a shorter random length.
    dupe_factor: How many times each document is cut (differently).
    seed: Seed of all the randomness; the same seed gives the same examples.
    cls_id: Id of [CLS].
    sep_id: Id of [SEP].
    pad_id: Id of padding.

  Returns:
    int32 arrays: `input_ids`, `token_type_ids`, `attention_mask` (1 real, 0
    padding) and `word_ids` (unique per word within an example, -1 for
    specials and padding), each [N, L]; `nsp_label` [N] (0 = B follows A / in
    order, 1 = random B / swapped; always 0 for single segments).

  Raises:
    ValueError: On an unknown objective, a length too small, or no documents.
  """
  obj = objectives.get(objective)
  n_special = 3 if obj.pairs else 2  # [CLS] A [SEP] (B [SEP])
  if max_seq_length < n_special + 2:
    raise ValueError(f'max_seq_length={max_seq_length} is too small for '
                     f'objective {objective!r}; need >= {n_special + 2}')
  if not 0.0 <= short_seq_prob <= 1.0:
    raise ValueError(f'short_seq_prob must be in [0, 1], got {short_seq_prob}')
  if dupe_factor < 1:
    raise ValueError(f'dupe_factor must be >= 1, got {dupe_factor}')
  docs = [list(d) for d in token_docs if d]
  if not docs:
    raise ValueError('create_examples got no non-empty documents')
  rng = random.Random(seed)
  rng.shuffle(docs)
  max_tokens = max_seq_length - n_special
  pairs = []
  for _ in range(dupe_factor):
    if not obj.pairs:
      pairs.extend(_packed_examples(docs, max_tokens, short_seq_prob, sep_id,
                                    rng))
      continue
    for doc_index in range(len(docs)):
      pairs.extend(_examples_from_document(docs, doc_index, max_tokens,
                                           short_seq_prob, obj.sentence_head,
                                           rng))
  rng.shuffle(pairs)
  return _to_arrays(pairs, max_seq_length, cls_id, sep_id, pad_id)


def padding_fraction(examples: dict[str, np.ndarray]) -> float:
  """Fraction of all positions that are padding (attention_mask 0; packed
  rows number their examples 1..K there)."""
  return float(1.0 - np.mean(examples['attention_mask'] > 0))


# Tokens of a segment under construction: parallel lists of ids and of word
# keys. A word key only needs to change from one word to the next; keys are
# renumbered 0, 1, ... when the example is written out.
class _Segment:
  __slots__ = ('ids', 'words', 'next_word')

  def __init__(self):
    self.ids, self.words, self.next_word = [], [], 0

  def extend(self, sentence: Sentence) -> None:
    ids, words = sentence
    self.ids.extend(ids)
    self.words.extend(w + self.next_word for w in words)
    self.next_word += max(words) + 1

  def __len__(self) -> int:
    return len(self.ids)


def _examples_from_document(docs, doc_index, max_tokens, short_seq_prob,
                            sentence_head, rng):
  """Port of BERT's `create_instances_from_document` (ALBERT's for SOP).

  `sentence_head` ('nsp' or 'sop') picks how B is chosen and labelled.
  """
  # `i` and the chunk follow the original line by line, so that a reader can
  # check the two against each other.
  document = docs[doc_index]
  target_length = max_tokens
  if rng.random() < short_seq_prob:
    target_length = rng.randint(2, max_tokens)
  examples = []
  chunk, chunk_length = [], 0
  i = 0
  while i < len(document):
    chunk.append(document[i])
    chunk_length += len(document[i][0])
    if i == len(document) - 1 or chunk_length >= target_length:
      a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
      a, b = _Segment(), _Segment()
      for sentence in chunk[:a_end]:
        a.extend(sentence)
      if len(chunk) == 1 or (sentence_head == 'nsp' and rng.random() < 0.5):
        label = 1
        _fill_from_random_document(b, docs, doc_index,
                                   target_length - len(a), rng)
        # The sentences not used go back, so they start the next example.
        i -= len(chunk) - a_end
      else:
        for sentence in chunk[a_end:]:
          b.extend(sentence)
        label = 0
        if sentence_head == 'sop' and rng.random() < 0.5:
          a, b, label = b, a, 1
      _truncate(a, b, max_tokens, rng)
      examples.append((a, b, label))
      chunk, chunk_length = [], 0
    i += 1
  return examples


def _fill_from_random_document(b, docs, doc_index, target_length, rng):
  """Segment B from a random other document, from a random sentence on."""
  for _ in range(10):  # The original's bounded retry: one doc can't loop.
    other = rng.randint(0, len(docs) - 1)
    if other != doc_index:
      break
  document = docs[other]
  for sentence in document[rng.randint(0, len(document) - 1):]:
    b.extend(sentence)
    if len(b) >= target_length:
      break


def _truncate(a, b, max_tokens, rng):
  """BERT's `truncate_seq_pair`: trim the longer, at a random end."""
  while len(a) + len(b) > max_tokens:
    longer = a if len(a) > len(b) else b
    if rng.random() < 0.5:
      del longer.ids[0], longer.words[0]
    else:
      longer.ids.pop()
      longer.words.pop()


class _Packed:
  """A run of the token stream: ids and word keys (-1 at document [SEP]s)."""
  __slots__ = ('ids', 'words')

  def __init__(self, ids: np.ndarray, words: np.ndarray):
    self.ids, self.words = ids, words

  def __len__(self) -> int:
    return len(self.ids)


def _packed_examples(docs, max_tokens, short_seq_prob, sep_id, rng):
  """Single-segment examples (`mlm`), cut from one stream of all documents.

  As RoBERTa's FULL-SENTENCES inputs, examples run on across document ends,
  with a [SEP] between documents; unlike them, a sentence may be cut where an
  example is full, so rows have no padding (short targets aside). Without a
  sentence-level task nothing is lost by the cut.
  """
  order = list(range(len(docs)))
  rng.shuffle(order)  # A new order per pass moves every cut.
  ids, words, next_word = [], [], 0
  for k, doc_index in enumerate(order):
    if k:
      ids.append(sep_id)
      words.append(NO_WORD)
    for sentence_ids, sentence_words in docs[doc_index]:
      ids.extend(sentence_ids)
      words.extend(w + next_word for w in sentence_words)
      next_word += max(sentence_words) + 1
  ids, words = np.asarray(ids, np.int32), np.asarray(words, np.int64)
  examples, start = [], 0
  while start < len(ids):
    if words[start] == NO_WORD:  # A row never starts with a document [SEP].
      start += 1
      continue
    target = max_tokens
    if rng.random() < short_seq_prob:
      target = rng.randint(2, max_tokens)
    end = min(start + target, len(ids))
    examples.append((_Packed(ids[start:end], words[start:end]), None, 0))
    start = end
  return examples


def _renumber(words, start: int) -> tuple[np.ndarray, int]:
  """Word keys -> consecutive word ids from `start`; also the next free id.

  Keys only differ between neighbouring words; -1 (a [SEP]) stays -1.
  """
  keys = np.asarray(words, np.int64)
  out = np.full(keys.shape, NO_WORD, np.int32)
  is_word = keys != NO_WORD
  keys = keys[is_word]
  if keys.size == 0:
    return out, start
  new_word = np.concatenate([[0], (keys[1:] != keys[:-1]).astype(np.int64)])
  ids = start + np.cumsum(new_word)
  out[is_word] = ids
  return out, int(ids[-1]) + 1


def _to_arrays(pairs, length, cls_id, sep_id, pad_id):
  """Lays examples out as `[CLS] A [SEP] (B [SEP])` rows padded to L.

  A and B are `_Segment`s or `_Packed` runs (B None for one segment).
  """
  n = len(pairs)
  out = {
      'input_ids': np.full((n, length), pad_id, np.int32),
      'token_type_ids': np.zeros((n, length), np.int32),
      'attention_mask': np.zeros((n, length), np.int32),
      'word_ids': np.full((n, length), NO_WORD, np.int32),
      'nsp_label': np.zeros((n,), np.int32),
  }
  for row, (a, b, label) in enumerate(pairs):
    words_a, next_word = _renumber(a.words, 0)
    end_a = 1 + len(a)
    out['input_ids'][row, 0] = cls_id
    out['input_ids'][row, 1:end_a] = a.ids
    out['input_ids'][row, end_a] = sep_id
    out['word_ids'][row, 1:end_a] = words_a
    end = end_a + 1
    if b is not None:
      words_b, _ = _renumber(b.words, next_word)
      end_b = end + len(b)
      out['input_ids'][row, end:end_b] = b.ids
      out['input_ids'][row, end_b] = sep_id
      out['word_ids'][row, end:end_b] = words_b
      out['token_type_ids'][row, end:end_b + 1] = 1
      end = end_b + 1
    out['attention_mask'][row, :end] = 1
    out['nsp_label'][row] = label
  return out
