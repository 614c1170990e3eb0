r"""Trains a WordPiece or SentencePiece tokenizer on corpora: the command line.

  python -m bert_jax.data.pretrain.tokenizer_cli --corpus=builtin \
      --kind=wordpiece --vocab_size=8000 --out=/tmp/tok

Corpus specs are those of `bert_jax.data.pretrain.corpora.load_corpus` ('builtin', a
file path or glob, or 'tfds:NAME[:SPLIT]'); repeat --corpus to combine them.
It lives in the data layer because it reads corpora; the training itself is
`bert_jax.text.train_tokenizer`.
"""

from collections.abc import Iterator, Sequence
import itertools

from absl import app
from absl import flags
from absl import logging

from bert_jax.data.pretrain import corpora
from bert_jax.text import tokenizer as tokenizer_lib
from bert_jax.text import train_tokenizer as train_lib


def corpus_sentences(specs: Sequence[str],
                     max_documents: int | None = None) -> Iterator[str]:
  """Sentences of the corpora named by `specs`, in order.

  Args:
    specs: Corpus specs for `corpora.load_corpus`.
    max_documents: Stop after this many documents over all specs together.

  Yields:
    Sentence strings.
  """
  documents = itertools.chain.from_iterable(
      corpora.load_corpus(s) for s in specs)
  if max_documents is not None:
    documents = itertools.islice(documents, max_documents)
  for doc in documents:
    yield from doc


def run(specs: Sequence[str], kind: str, vocab_size: int, out_dir: str,
        lowercase: bool | None = None,
        max_documents: int | None = None) -> tokenizer_lib.Tokenizer:
  """What the command line does: train on corpora, write to `out_dir`.

  Args:
    specs: Corpus specs (see `corpus_sentences`).
    kind: 'wordpiece' or 'sentencepiece'.
    vocab_size: Target vocabulary size.
    out_dir: Output folder.
    lowercase: Lower-case text; None takes the kind's default (WordPiece yes,
      SentencePiece no).
    max_documents: Train on at most this many documents.

  Returns:
    The trained tokenizer.

  Raises:
    ValueError: If no corpus is given, or on a bad kind or vocab_size.
  """
  if not specs:
    raise ValueError('no corpus given; pass at least one --corpus')
  kw = {} if lowercase is None else {'do_lower_case': lowercase}
  tok = train_lib.train_tokenizer(kind, corpus_sentences(specs, max_documents),
                                  vocab_size, out_dir, **kw)
  logging.info('Wrote %s to %s', tok, out_dir)
  return tok


def define_flags() -> None:
  """Defines the flags; only when run as a program, so that importing this
  module for its functions adds nothing to the global flags."""
  flags.DEFINE_multi_string(
      'corpus', None, 'Corpus spec: ' + ', '.join(corpora.SPEC_FORMS) +
      '. Repeat to combine corpora.', required=True)
  flags.DEFINE_enum('kind', 'wordpiece', list(tokenizer_lib.KINDS),
                    'Tokenizer type.')
  flags.DEFINE_integer('vocab_size', None, 'Target vocabulary size.',
                       required=True, lower_bound=10)
  flags.DEFINE_string('out', None, 'Output folder.', required=True)
  flags.DEFINE_bool('lowercase', None,
                    'Lower-case text; default: yes for wordpiece, no for '
                    'sentencepiece.')
  flags.DEFINE_integer('max_documents', None,
                       'Train on at most this many documents.', lower_bound=1)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  tok = run(f.corpus, f.kind, f.vocab_size, f.out, f.lowercase,
            f.max_documents)
  print(f'{tok} written to {f.out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
