"""Tokenizers (WordPiece, SentencePiece) behind one interface, and training.

  from bert_jax import text
  tok = text.load_tokenizer('/path/to/vocab.txt')
  batch = tok.encode_batch([('a question', 'a passage')], max_length=384)

Training: `text.train_wordpiece`, `text.train_sentencepiece`, or the
`bert_jax.text.train_tokenizer` module (whose `train_tokenizer(kind, ...)`
picks one; the package attribute `train_tokenizer` is that module, since a
function of the same name would hide it).
"""

import importlib

from bert_jax.text.tokenizer import Encoding
from bert_jax.text.tokenizer import load_tokenizer
from bert_jax.text.tokenizer import SentencePieceTokenizer
from bert_jax.text.tokenizer import Tokenizer
from bert_jax.text.tokenizer import WordPieceTokenizer

_TRAINING = ('train_wordpiece', 'train_sentencepiece')

__all__ = [
    'Encoding', 'Tokenizer', 'WordPieceTokenizer', 'SentencePieceTokenizer',
    'load_tokenizer', *_TRAINING,
]


def __getattr__(name):
  # Loaded on first use: importing train_tokenizer here would make
  # `python -m bert_jax.text.train_tokenizer` warn that the module was
  # already imported before it ran as __main__.
  if name in _TRAINING or name == 'train_tokenizer':
    module = importlib.import_module('bert_jax.text.train_tokenizer')
    return module if name == 'train_tokenizer' else getattr(module, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
