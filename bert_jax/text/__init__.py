"""Tokenizers (WordPiece, SentencePiece) behind one interface, and training.

  from bert_jax import text
  tok = text.load_tokenizer('/path/to/vocab.txt')
  batch = tok.encode_batch([('a question', 'a passage')], max_length=384)

Training: `text.train_wordpiece`, `text.train_sentencepiece`, or
`text.train_tokenizer.train_tokenizer(kind, ...)`, which picks one (the
package attribute `train_tokenizer` is the module, since a function of the
same name would hide it). The command line that trains on a corpus is
`python -m bert_jax.data.pretrain.tokenizer_cli`: this package reads no corpora.
"""

from bert_jax.text.tokenizer import Encoding
from bert_jax.text.tokenizer import load_tokenizer
from bert_jax.text.tokenizer import SentencePieceTokenizer
from bert_jax.text.tokenizer import Tokenizer
from bert_jax.text.tokenizer import WordPieceTokenizer
from bert_jax.text.train_tokenizer import train_sentencepiece
from bert_jax.text.train_tokenizer import train_wordpiece

__all__ = [
    'Encoding', 'Tokenizer', 'WordPieceTokenizer', 'SentencePieceTokenizer',
    'load_tokenizer', 'train_wordpiece', 'train_sentencepiece',
]
