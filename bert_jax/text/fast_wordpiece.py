"""Batch WordPiece encoding for corpus-scale data preparation.

`encoder_for` (and `wordpiece.make_encode_batch`, from a vocab file) returns a function from lines of text to one flat int32
id array plus row offsets, the form that building examples with numpy wants
(no per-line Python lists). Two engines give the same ids:

- `nanotoken` (a dependency), a Rust WordPiece that reads a
  Hugging Face `tokenizer.json`. It is handed the JSON of the very
  `tokenizers.Tokenizer` that `WordPieceTokenizer` builds (BertNormalizer,
  BertPreTokenizer, the 200-character word limit, the special tokens), so the
  settings are identical by construction. Measured on 40 MB of mixed text
  (code, docs, accents in NFC/NFD, CJK, Hangul, emoji, control and zero-width
  characters, words of 99-500 characters, typed [MASK]): every one of 708,095
  lines gave the same ids as `tokenizers`, uncased and cased, at 22-27 MB of
  text per CPU-second on one thread against 1.3-1.4 for `tokenizers`'
  `encode_batch` (tests/text/test_fast_wordpiece.py keeps checking parity).
- `tokenizers` itself, the reference, used when nanotoken is not installed or
  declines the configuration.

`flash-tokenizer` and `kitoken` were measured too and rejected: they differ
from the reference on 3.5% and 0.9% of those lines (typed special tokens,
Hangul, lone combining marks, CJK, words over 100 characters).
"""

from collections.abc import Callable, Sequence
import itertools
import logging
import os

import numpy as np


ENGINES = ('auto', 'nanotoken', 'tokenizers')
# Forces an engine for every WordPiece encode_flat (e.g. 'tokenizers', the
# reference, to rule the fast engine out when chasing a difference).
ENGINE_ENV = 'BERT_JAX_WORDPIECE_ENGINE'

# lines -> (ids, offsets): row i's ids are ids[offsets[i]:offsets[i + 1]];
# ids int32, offsets int64 of length len(lines) + 1, offsets[0] == 0.
EncodeBatch = Callable[[Sequence[str]], tuple[np.ndarray, np.ndarray]]


def _nanotoken_encoder(hf_tokenizer, parallel: bool) -> EncodeBatch:
  import nanotoken  # pylint: disable=g-import-not-at-top
  backend = nanotoken.WordPieceTokenizer.from_json(hf_tokenizer.to_str())

  def encode_batch(lines):
    ids, offsets = backend.encode_batch(
        lines, add_special_tokens=False, parallel=parallel)
    # Ids come as uint32; every vocabulary id is < 2**31, so viewing the same
    # bytes as int32 is exact and copies nothing.
    return ids.view(np.int32), offsets

  return encode_batch


def _tokenizers_encoder(hf_tokenizer) -> EncodeBatch:

  def encode_batch(lines):
    encs = hf_tokenizer.encode_batch(list(lines), add_special_tokens=False)
    rows = [e.ids for e in encs]
    offsets = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    ids = np.fromiter(itertools.chain.from_iterable(rows), np.int32,
                      count=int(offsets[-1]))
    return ids, offsets

  return encode_batch


def encoder_for(hf_tokenizer, engine: str = 'auto',
                parallel: bool = False) -> EncodeBatch:
  """`wordpiece.make_encode_batch` for a built `tokenizers.Tokenizer`.

  ENGINE 'auto' also follows $BERT_JAX_WORDPIECE_ENGINE when it is set.
  """
  if engine == 'auto':
    engine = os.environ.get(ENGINE_ENV, 'auto') or 'auto'
  if engine not in ENGINES:
    raise ValueError(f'engine must be one of {ENGINES}, got {engine!r}')
  fn = None
  if engine in ('auto', 'nanotoken'):
    try:
      fn = _nanotoken_encoder(hf_tokenizer, parallel)
      name = 'nanotoken'
    except ImportError:
      if engine == 'nanotoken':
        raise ImportError(
            "engine='nanotoken' needs `pip install nanotoken` (a dependency "
            'of bert_jax)') from None
    except ValueError as e:  # nanotoken.UnsupportedTokenizerError
      if engine == 'nanotoken':
        raise
      logging.warning('nanotoken declined this tokenizer (%s); using '
                      'tokenizers', e)
  if fn is None:
    fn = _tokenizers_encoder(hf_tokenizer)
    name = 'tokenizers'
  fn.engine = name
  return fn


def split_rows(ids: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
  """The per-line views of `encode_batch`'s output (no copies)."""
  return np.split(ids, offsets[1:-1])
