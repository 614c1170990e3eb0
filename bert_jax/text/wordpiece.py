"""WordPiece tokenizer (the original BERT vocabulary type), via `tokenizers`.

The pipeline is the one Hugging Face's BertTokenizer builds: BertNormalizer
(clean-up, optional lower-casing and accent stripping, spaces around CJK
characters), BertPreTokenizer (split on whitespace and punctuation), then
greedy longest-match WordPiece with `##` continuation pieces. Matching it
piece for piece is what lets checkpoints converted from Hugging Face see the
inputs they were trained on. One deliberate difference: a word becomes [UNK]
past 200 characters, the original BERT's limit, not Hugging Face's 100.
"""

from collections.abc import Sequence
import itertools
import os

import numpy as np

import tokenizers
from tokenizers import decoders
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers

from bert_jax import storage
from bert_jax.errors import UserInputError
from bert_jax.text import base
from bert_jax.text import fast_wordpiece

VOCAB_FILE = 'vocab.txt'
PAD, UNK, CLS, SEP, MASK = '[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
# Longer words become a single [UNK] rather than many pieces. 200 is the
# original BERT's limit (tokenization.py, which Google's checkpoints were
# trained with); Hugging Face's BertTokenizer uses 100, so words of 101 to
# 200 characters are pieces here and [UNK] there.
MAX_CHARS_PER_WORD = 200


def renumber_words(word_ids: Sequence[int | None]) -> list[int]:
  """Numbers words 0, 1, ... in order, a new word wherever the id changes.

  `tokenizers` numbers words per pre-tokenized segment; renumbering on change
  keeps indices contiguous even if a version restarts them around added
  tokens such as `[MASK]` typed into the text.
  """
  out, current, prev = [], -1, object()
  for w in word_ids:
    if w is None or w != prev:
      current += 1
    out.append(current)
    prev = w
  return out


class WordPieceTokenizer(base.Tokenizer):
  """BERT's WordPiece tokenizer, matching Hugging Face's BertTokenizer.

  Special tokens `[PAD] [UNK] [CLS] [SEP] [MASK]` must be in the vocabulary.
  As in Hugging Face, those strings typed into raw text are matched as the
  special tokens themselves.
  """

  kind = 'wordpiece'

  def __init__(self,
               vocab_file: str,
               do_lower_case: bool = True,
               strip_accents: bool | None = None,
               tokenize_chinese_chars: bool = True):
    """Loads a vocabulary.

    Args:
      vocab_file: A BERT vocab.txt, one piece per line, the line number is the
        id.
      do_lower_case: Lower-case text first (uncased models).
      strip_accents: Remove accents; None follows `do_lower_case`, as BERT does.
      tokenize_chinese_chars: Put spaces around CJK characters so each is a
        word.

    Raises:
      FileNotFoundError: If `vocab_file` does not exist.
      ValueError: If a special token is missing from the vocabulary.
    """
    if not storage.isfile(vocab_file):
      raise FileNotFoundError(f'WordPiece vocabulary not found: {vocab_file}')
    self.vocab_file = vocab_file
    self._do_lower_case = do_lower_case
    self.strip_accents = strip_accents
    self.tokenize_chinese_chars = tokenize_chinese_chars
    with storage.local_copy(vocab_file) as local:  # tokenizers reads local files.
      vocab = models.WordPiece.read_file(local)
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
      raise UserInputError(
          f'WordPiece vocabulary {vocab_file} lacks special tokens {missing}; '
          f'it needs all of {list(SPECIAL_TOKENS)}')
    self._ids = {t: vocab[t] for t in SPECIAL_TOKENS}
    self.special_ids = frozenset(self._ids.values())
    tok = tokenizers.Tokenizer(models.WordPiece(
        vocab, unk_token=UNK, max_input_chars_per_word=MAX_CHARS_PER_WORD))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=do_lower_case)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix='##')
    # Registered as special so they are never split or lower-cased, and
    # `decode(skip_special_tokens=True)` drops them, as in Hugging Face.
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    # Specials are added by `encode` itself, which owns truncation.
    tok.post_processor = None
    self._tok = tok

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size(with_added_tokens=True)

  @property
  def pad_id(self) -> int:
    return self._ids[PAD]

  @property
  def unk_id(self) -> int:
    return self._ids[UNK]

  @property
  def cls_id(self) -> int:
    return self._ids[CLS]

  @property
  def sep_id(self) -> int:
    return self._ids[SEP]

  @property
  def mask_id(self) -> int:
    return self._ids[MASK]

  @property
  def do_lower_case(self) -> bool:
    return self._do_lower_case

  def tokenize(self, text: str) -> list[str]:
    return self._tok.encode(text, add_special_tokens=False).tokens

  def encode_words(self, text: str) -> tuple[list[int], list[int]]:
    enc = self._tok.encode(text, add_special_tokens=False)
    return enc.ids, renumber_words(enc.word_ids)

  def encode_words_batch(
      self, texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
    # The Rust side splits a batch across threads.
    encs = self._tok.encode_batch(list(texts), add_special_tokens=False)
    return [(e.ids, renumber_words(e.word_ids)) for e in encs]

  def encode_flat(self, texts: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # The fast engine when installed (bert_jax.text.fast_wordpiece: same ids).
    # A word's first piece never starts with '##' and its others always do
    # (the pre-tokenizer splits '#' off as punctuation), so word starts come
    # from the ids alone: no per-token Python.
    if getattr(self, '_flat_encoder', None) is None:
      self._flat_encoder = fast_wordpiece.encoder_for(self._tok)
    ids, offsets = self._flat_encoder(list(texts))
    return ids, np.diff(offsets), ~self._continuation()[ids]

  def __getstate__(self):
    # Caches are rebuilt where the object lands (the engine may not pickle).
    state = dict(self.__dict__)
    state.pop('_flat_encoder', None)
    state.pop('_is_continuation', None)
    return state

  def _continuation(self) -> np.ndarray:
    if getattr(self, '_is_continuation', None) is None:
      vocab = self._tok.get_vocab(with_added_tokens=False)
      table = np.zeros(max(self._tok.get_vocab_size(), 1), bool)
      for piece, i in vocab.items():
        if piece.startswith('##') and len(piece) > 2:
          table[i] = True
      self._is_continuation = table
    return self._is_continuation

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    return self._tok.decode([int(i) for i in ids],
                            skip_special_tokens=skip_special_tokens)

  def id_to_token(self, i: int) -> str:
    token = self._tok.id_to_token(int(i))
    if token is None:
      raise ValueError(
          f'id {i} is out of range for a vocabulary of {self.vocab_size}')
    return token

  def token_to_id(self, t: str) -> int:
    i = self._tok.token_to_id(t)
    return self.unk_id if i is None else i

  def save(self, directory: str) -> None:
    """Writes vocab.txt and tokenizer_config.json.

    The config also carries Hugging Face's keys, so the folder loads with
    `transformers.BertTokenizer.from_pretrained` too.
    """
    storage.makedirs(directory)
    target = os.path.join(directory, VOCAB_FILE)
    if storage.is_uri(target) or storage.is_uri(self.vocab_file):
      same = storage.absolute(target) == storage.absolute(self.vocab_file)
    else:
      same = os.path.exists(target) and os.path.samefile(self.vocab_file, target)
    if not same:
      storage.copyfile(self.vocab_file, target)
    self._write_config(
        directory,
        strip_accents=self.strip_accents,
        tokenize_chinese_chars=self.tokenize_chinese_chars,
        tokenizer_class='BertTokenizer',
        pad_token=PAD, unk_token=UNK, cls_token=CLS, sep_token=SEP,
        mask_token=MASK)


def make_encode_batch(vocab_file: str,
                      do_lower_case: bool = True,
                      *,
                      engine: str = 'auto',
                      parallel: bool = False) -> fast_wordpiece.EncodeBatch:
  """A fast `lines -> (ids, offsets)` function for a BERT vocabulary.

  The ids are those of `WordPieceTokenizer(vocab_file, do_lower_case)` without
  special tokens and without truncation.

  Args:
    vocab_file: A BERT vocab.txt (local path or gs://).
    do_lower_case: Uncased vocabulary: lower-case and strip accents.
    engine: 'auto' (nanotoken when installed, else tokenizers), 'nanotoken'
      (fail if it is missing) or 'tokenizers' (the reference).
    parallel: Let the engine use its own threads. Off by default: data
      preparation runs one process per core, and threads would fight them.

  Returns:
    encode_batch(lines) -> (ids int32 [total], offsets int64 [len(lines) + 1]).
    It has an `engine` attribute naming the engine used.

  Raises:
    ValueError: For an unknown engine.
    ImportError: If engine='nanotoken' and it is not installed.
  """
  tok = WordPieceTokenizer(vocab_file, do_lower_case=do_lower_case)
  # The very pipeline WordPieceTokenizer encodes with, so both engines get the
  # same settings. Its Rust threads follow RAYON_NUM_THREADS.
  return fast_wordpiece.encoder_for(tok._tok, engine, parallel)  # pylint: disable=protected-access
