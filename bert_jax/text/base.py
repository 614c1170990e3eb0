"""The tokenizer interface every model and data module codes against.

A `Tokenizer` turns text into `Encoding`s laid out the BERT way:
`[CLS] A [SEP]` for one text and `[CLS] A [SEP] B [SEP]` for a pair, with
token type 0 for `[CLS] A [SEP]` and 1 for `B [SEP]`. Subclasses only supply
the word-level pieces (`encode_words`) and the vocabulary; the layout,
truncation and padding live here once, so WordPiece and SentencePiece models
behave identically downstream.
"""

import abc
import itertools
from collections.abc import Sequence
import dataclasses
import json
import os

import numpy as np

from bert_jax import storage

# Field names of `encode_batch`'s output, in a fixed order.
BATCH_KEYS = ('input_ids', 'token_type_ids', 'attention_mask', 'word_ids')
CONFIG_FILE = 'tokenizer_config.json'
# Word index of tokens that belong to no word: specials and padding.
NO_WORD = -1


@dataclasses.dataclass
class Encoding:
  """One encoded example, unpadded unless padding was asked for.

  Attributes:
    input_ids: Token ids, specials included.
    token_type_ids: 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`, 0 for padding.
    attention_mask: 1 for real tokens, 0 for padding.
    word_ids: Per token, the index of the word it came from, counting across
      both texts (B's words continue after A's, including words truncated
      away from A); -1 for special tokens and padding.
  """
  input_ids: list[int]
  token_type_ids: list[int]
  attention_mask: list[int]
  word_ids: list[int]

  def __len__(self) -> int:
    return len(self.input_ids)


def truncate_longest_first(
    a: list[int], b: list[int], budget: int) -> tuple[int, int]:
  """Lengths that A and B keep under Hugging Face's `longest_first` rule.

  The rule removes one token at a time from the end of the longer sequence,
  from B when they are equally long, until `len(A) + len(B) <= budget`. The
  closed form below gives the same lengths without the loop.

  Args:
    a: Tokens of the first text.
    b: Tokens of the second text.
    budget: How many non-special tokens fit; must be >= 0.

  Returns:
    (kept length of A, kept length of B).
  """
  n_a, n_b = len(a), len(b)
  if n_a + n_b <= budget:
    return n_a, n_b
  shorter = min(n_a, n_b)
  if budget >= 2 * shorter:
    # Only the longer one is cut; it never gets down to the shorter's length.
    return (budget - n_b, n_b) if n_a > n_b else (n_a, budget - n_a)
  # Otherwise both end up cut, taking turns once equally long (B first), so A
  # keeps the ceiling of half of the budget whichever was longer.
  return budget - budget // 2, budget // 2


class Tokenizer(abc.ABC):
  """Text to BERT inputs, the same way for every vocabulary type.

  Subclasses implement the abstract members; everything else (layout,
  truncation, padding, batching) is shared.
  """

  kind: str = ''
  special_ids: frozenset[int] = frozenset()

  # --- What a subclass provides. ---

  @property
  @abc.abstractmethod
  def vocab_size(self) -> int:
    """Number of ids, specials included."""

  @property
  @abc.abstractmethod
  def pad_id(self) -> int:
    """Id of the padding token."""

  @property
  @abc.abstractmethod
  def unk_id(self) -> int:
    """Id of the unknown token."""

  @property
  @abc.abstractmethod
  def cls_id(self) -> int:
    """Id of the token that starts every example."""

  @property
  @abc.abstractmethod
  def sep_id(self) -> int:
    """Id of the token that ends each text."""

  @property
  @abc.abstractmethod
  def mask_id(self) -> int:
    """Id that masked-language-model inputs put in place of a token."""

  @property
  @abc.abstractmethod
  def do_lower_case(self) -> bool:
    """Whether text is lower-cased before it is split."""

  @abc.abstractmethod
  def tokenize(self, text: str) -> list[str]:
    """Splits text into vocabulary pieces, without special tokens."""

  @abc.abstractmethod
  def encode_words(self, text: str) -> tuple[list[int], list[int]]:
    """Ids of one text and, per id, its word's index (0-based in this text).

    No special tokens are added and nothing is truncated.
    """

  @abc.abstractmethod
  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    """Turns ids back into text."""

  @abc.abstractmethod
  def id_to_token(self, i: int) -> str:
    """The piece behind an id; raises ValueError for an id out of range."""

  @abc.abstractmethod
  def token_to_id(self, t: str) -> int:
    """The id of a piece; `unk_id` for a piece not in the vocabulary."""

  @abc.abstractmethod
  def save(self, directory: str) -> None:
    """Writes the vocabulary and tokenizer_config.json into `directory`."""

  def encode_words_batch(
      self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    """`encode_words` over many texts; subclasses may do it in parallel."""
    return [self.encode_words(t) for t in texts]

  def encode_flat(self, texts: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Many texts as flat arrays, for building examples with numpy.

    Returns:
      ``(ids_T, lengths_S, new_word_T)``: every text's ids one after another
      (int32), each text's number of ids (int64), and True where a token
      starts a word (so words are runs, as in `encode_words`).
    """
    encoded = self.encode_words_batch(texts)
    lengths = np.fromiter((len(ids) for ids, _ in encoded), np.int64,
                          len(encoded))
    total = int(lengths.sum())
    ids = np.fromiter(itertools.chain.from_iterable(i for i, _ in encoded),
                      np.int32, total)
    words = np.fromiter(itertools.chain.from_iterable(w for _, w in encoded),
                        np.int64, total)
    new_word = np.ones(total, bool)
    new_word[1:] = words[1:] != words[:-1]
    starts = np.cumsum(lengths) - lengths
    new_word[starts[lengths > 0]] = True
    return ids, lengths, new_word

  # --- Shared behaviour. ---

  def encode(self,
             text: str,
             pair: str | None = None,
             max_length: int | None = None,
             pad_to: int | None = None) -> Encoding:
    """Encodes one text or a pair as `[CLS] A [SEP] (B [SEP])`.

    Args:
      text: The first text (A).
      pair: The optional second text (B).
      max_length: If given, the most tokens (specials included) to keep; A and
        B are cut with Hugging Face's `truncation='longest_first'` rule. None
        keeps everything.
      pad_to: If given, pad up to this many tokens.

    Returns:
      The `Encoding`.

    Raises:
      ValueError: If `max_length` leaves no room for the special tokens, or the
        example is longer than `pad_to`.
    """
    a = self.encode_words(text)
    b = None if pair is None else self.encode_words(pair)
    return self._assemble(a, b, max_length, pad_to)

  def encode_batch(self,
                   texts: Sequence[str] | Sequence[tuple[str, str]],
                   max_length: int | None = None,
                   pad_to_multiple_of: int = 1,
                   pad_to: int | None = None) -> dict[str, np.ndarray]:
    """Encodes and pads a batch of texts or of (A, B) pairs.

    Args:
      texts: Strings, or (A, B) pairs of strings; not a mix.
      max_length: As in `encode`.
      pad_to_multiple_of: Round the padded length up to a multiple of this, so
        jitted functions see few distinct shapes.
      pad_to: If given, the exact padded length (overrides rounding).

    Returns:
      A dict with int32 arrays `input_ids`, `token_type_ids`, `attention_mask`
      and `word_ids`, each of shape [batch, length].

    Raises:
      ValueError: On a bad `pad_to_multiple_of`, a mix of texts and pairs, or
        an example longer than `pad_to`.
    """
    if pad_to_multiple_of < 1:
      raise ValueError(
          f'pad_to_multiple_of must be >= 1, got {pad_to_multiple_of}')
    texts = list(texts)
    is_pair = [isinstance(t, (tuple, list)) for t in texts]
    if any(is_pair) and not all(is_pair):
      raise ValueError('encode_batch got a mix of single texts and pairs; '
                       'pass all strings or all (A, B) tuples')
    if texts and is_pair[0]:
      for t in texts:
        if len(t) != 2:
          raise ValueError(f'a pair must hold exactly 2 texts, got {t!r}')
      firsts = self.encode_words_batch([t[0] for t in texts])
      seconds = self.encode_words_batch([t[1] for t in texts])
    else:
      firsts = self.encode_words_batch(texts)
      seconds = [None] * len(texts)
    encodings = [self._assemble(a, b, max_length, None)
                 for a, b in zip(firsts, seconds)]
    longest = max((len(e) for e in encodings), default=0)
    if pad_to is not None:
      length = pad_to
    else:
      length = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    batch = {k: np.empty((len(encodings), length), np.int32)
             for k in BATCH_KEYS}
    for row, enc in enumerate(encodings):
      enc = self._pad(enc, length)
      for k in BATCH_KEYS:
        batch[k][row] = getattr(enc, k)
    return batch

  def _assemble(self, a: tuple[list[int], list[int]],
                b: tuple[list[int], list[int]] | None,
                max_length: int | None, pad_to: int | None) -> Encoding:
    """Adds specials, truncates and pads word-level encodings of A and B."""
    ids_a, words_a = a
    ids_b, words_b = b if b is not None else ([], [])
    n_special = 3 if b is not None else 2
    if max_length is not None:
      if max_length < n_special:
        raise ValueError(
            f'max_length={max_length} leaves no room for the {n_special} '
            f'special tokens of a {"pair" if b is not None else "text"}')
      keep_a, keep_b = truncate_longest_first(ids_a, ids_b,
                                              max_length - n_special)
    else:
      keep_a, keep_b = len(ids_a), len(ids_b)
    # B's words are numbered after all of A's words, truncated or not, so a
    # word index means the same thing whatever max_length is.
    words_in_a = words_a[-1] + 1 if words_a else 0
    input_ids = [self.cls_id] + ids_a[:keep_a] + [self.sep_id]
    word_ids = [NO_WORD] + words_a[:keep_a] + [NO_WORD]
    type_ids = [0] * len(input_ids)
    if b is not None:
      input_ids += ids_b[:keep_b] + [self.sep_id]
      word_ids += [w + words_in_a for w in words_b[:keep_b]] + [NO_WORD]
      type_ids += [1] * (keep_b + 1)
    enc = Encoding(input_ids, type_ids, [1] * len(input_ids), word_ids)
    return enc if pad_to is None else self._pad(enc, pad_to)

  def _pad(self, enc: Encoding, length: int) -> Encoding:
    """Pads an encoding to `length` tokens."""
    extra = length - len(enc)
    if extra < 0:
      raise ValueError(
          f'an example has {len(enc)} tokens, more than pad_to={length}; '
          'pass max_length to truncate it')
    return Encoding(enc.input_ids + [self.pad_id] * extra,
                    enc.token_type_ids + [0] * extra,
                    enc.attention_mask + [0] * extra,
                    enc.word_ids + [NO_WORD] * extra)

  def _write_config(self, directory: str, **extra) -> None:
    """Writes tokenizer_config.json, which `load_tokenizer` reads back."""
    config = {'kind': self.kind, 'do_lower_case': self.do_lower_case, **extra}
    # Atomic: a run reuses its workdir's tokenizer when this file is there,
    # and a kill mid-write must not leave half of it.
    storage.write_text(os.path.join(directory, CONFIG_FILE),
                       json.dumps(config, indent=2, sort_keys=True) + '\n')

  def __repr__(self) -> str:
    return (f'{type(self).__name__}(vocab_size={self.vocab_size}, '
            f'do_lower_case={self.do_lower_case})')
