"""Tokenizer interface, implementations, and `load_tokenizer`.

The one place to import tokenizers from. The interface lives in `base`, the
implementations in `wordpiece` and `sentencepiece_tok`; this module re-exports
them and decides which one a path on disk holds.
"""

import json
import os

from bert_jax import storage
from bert_jax.errors import UserInputError
from bert_jax.text import base
from bert_jax.text import sentencepiece_tok
from bert_jax.text import wordpiece

Encoding = base.Encoding
Tokenizer = base.Tokenizer
WordPieceTokenizer = wordpiece.WordPieceTokenizer
SentencePieceTokenizer = sentencepiece_tok.SentencePieceTokenizer

KINDS = ('wordpiece', 'sentencepiece')
# Default lower-casing per kind when nothing says otherwise: BERT's WordPiece
# models are mostly uncased, SentencePiece models keep case.
_DEFAULT_LOWER = {'wordpiece': True, 'sentencepiece': False}
# SentencePiece file names, in order of preference, that a folder may hold.
_SP_FILES = (sentencepiece_tok.MODEL_FILE, 'sentencepiece.model',
             'tokenizer.model')


def _read_config(directory: str) -> dict:
  path = os.path.join(directory, base.CONFIG_FILE)
  if not storage.isfile(path):
    return {}
  try:
    config = json.loads(storage.read_text(path))
  except json.JSONDecodeError as e:
    raise UserInputError(f'{path} is not valid JSON: {e}') from e
  if not isinstance(config, dict):
    raise UserInputError(f'{path} should hold a JSON object, got {config!r}')
  return config


def load_tokenizer(path: str, do_lower_case: bool | None = None) -> Tokenizer:
  """Loads a tokenizer from a file or a folder.

  Args:
    path: One of
      - a WordPiece vocabulary (`*.txt`);
      - a SentencePiece model (`*.model`);
      - a folder written by `Tokenizer.save`, or a Hugging Face BERT/ALBERT
        folder: tokenizer_config.json (optional; its `kind`, `do_lower_case`,
        `strip_accents` and `tokenize_chinese_chars` are used) next to
        vocab.txt or spiece.model.
    do_lower_case: Overrides the folder's setting. When neither says, WordPiece
      lower-cases and SentencePiece does not. A bare file's neighbouring
      tokenizer_config.json is not read: pass the folder for that.

  Returns:
    A `WordPieceTokenizer` or `SentencePieceTokenizer`.

  Raises:
    FileNotFoundError: If nothing loadable is at `path`; the message names
      every path looked for.
    ValueError: If the file type or the config's `kind` is not known.
  """
  if storage.isfile(path):
    if path.endswith('.model'):
      kind, file, config = 'sentencepiece', path, {}
    elif path.endswith('.txt'):
      kind, file, config = 'wordpiece', path, {}
    else:
      raise UserInputError(
          f'cannot tell the tokenizer type of {path}: expected a WordPiece '
          'vocab (.txt), a SentencePiece model (.model) or a folder')
  elif storage.isdir(path):
    config = _read_config(path)
    kind = config.get('kind')
    if kind is not None and kind not in KINDS:
      raise UserInputError(
          f'{os.path.join(path, base.CONFIG_FILE)} has kind={kind!r}; '
          f'expected one of {KINDS}')
    vocab = os.path.join(path, wordpiece.VOCAB_FILE)
    sp_files = [os.path.join(path, f) for f in _SP_FILES]
    candidates = {'wordpiece': [vocab], 'sentencepiece': sp_files}
    looked_for = candidates[kind] if kind else [vocab] + sp_files
    file = next((f for f in looked_for if storage.isfile(f)), None)
    if file is None:
      raise FileNotFoundError(
          f'no tokenizer files in {path}; looked for {looked_for}')
    kind = kind or ('wordpiece' if file == vocab else 'sentencepiece')
  else:
    raise FileNotFoundError(
        f'tokenizer path does not exist: {path} (expected a vocab.txt, a '
        '.model file or a folder holding one)')

  if do_lower_case is None:
    do_lower_case = config.get('do_lower_case', _DEFAULT_LOWER[kind])
  if kind == 'wordpiece':
    return WordPieceTokenizer(
        file,
        do_lower_case=bool(do_lower_case),
        strip_accents=config.get('strip_accents'),
        tokenize_chinese_chars=config.get('tokenize_chinese_chars', True))
  return SentencePieceTokenizer(file, do_lower_case=bool(do_lower_case))
