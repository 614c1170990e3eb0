"""Trains a WordPiece or SentencePiece vocabulary on sentences.

  tok = train_tokenizer('wordpiece', sentences, vocab_size=8000, out_dir=d)

The command line, which reads corpora, sits in the data layer:
`python -m bert_jax.data.pretrain.tokenizer_cli` (this package reads no corpora).

Both trainers are deterministic: the same sentences give the same files.
"""

import collections
from collections.abc import Callable, Iterable, Iterator, Mapping
import io
import os
import tempfile

from absl import logging
import sentencepiece as spm
import tokenizers
from tokenizers import models
from tokenizers import normalizers
from tokenizers import pre_tokenizers
from tokenizers import trainers

from bert_jax import storage
from bert_jax.text import sentencepiece_tok
from bert_jax.text import tokenizer as tokenizer_lib
from bert_jax.text import wordpiece

# SentencePiece trains single-threaded, on every sentence in order, so that
# the result depends on nothing but the corpus.
_SP_OPTIONS = dict(
    hard_vocab_limit=False,  # Tiny corpora cannot fill the vocabulary.
    num_threads=1,
    shuffle_input_sentence=False,
    input_sentence_size=0,  # Use every sentence, no sampling.
    pad_id=0, pad_piece=sentencepiece_tok.PAD,
    unk_id=1, unk_piece=sentencepiece_tok.UNK,
    bos_id=2, bos_piece=sentencepiece_tok.CLS,
    eos_id=3, eos_piece=sentencepiece_tok.SEP,
    # A control symbol (id 4) is never produced from text, only placed.
    control_symbols=[sentencepiece_tok.MASK],
    minloglevel=2,  # Its progress log would flood the console.
)


def train_wordpiece(texts: Iterable[str],
                    vocab_size: int,
                    out_dir: str,
                    do_lower_case: bool = True,
                    min_frequency: int = 2,
                    limit_alphabet: int = 1000) -> wordpiece.WordPieceTokenizer:
  """Trains a BERT WordPiece vocabulary and writes it to `out_dir`.

  The vocabulary is `[PAD] [UNK] [CLS] [SEP] [MASK]` (ids 0-4), then the
  alphabet, then each alphabet character as a `##` continuation piece, then
  the learnt pieces.

  Args:
    texts: Sentences or documents; each string is split into words first.
    vocab_size: Target size, everything included (a small corpus may stop
      short; an alphabet bigger than this overshoots it).
    out_dir: Folder for vocab.txt and tokenizer_config.json; created if needed.
    do_lower_case: Lower-case (and strip accents from) text first.
    min_frequency: Merges seen fewer times than this are not made.
    limit_alphabet: Keep at most this many characters, the most frequent;
      words holding any other character are left out of training (WordPiece
      would encode them as [UNK] anyway).

  Returns:
    The tokenizer, reloaded from the written vocab.txt.
  """
  _check_vocab_size(vocab_size)
  # Same normalisation as WordPieceTokenizer applies when it loads the
  # result, so the vocabulary is learnt on what encoding will see.
  normalizer = normalizers.BertNormalizer(
      clean_text=True, handle_chinese_chars=True, strip_accents=None,
      lowercase=do_lower_case)
  pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  counts = collections.Counter()
  for t in texts:
    counts.update(w for w, _ in pre_tokenizer.pre_tokenize_str(
        normalizer.normalize_str(t)))
  # `tokenizers` numbers characters and `##` pieces in hash-map order, which
  # changes from run to run and, through tie-breaks between equally frequent
  # merges, changes the vocabulary. Registering them first, sorted, as
  # "special" tokens fixes every id before training, and so the result.
  alphabet = _alphabet(counts, limit_alphabet)
  initial = list(wordpiece.SPECIAL_TOKENS) + alphabet + [
      '##' + c for c in alphabet]
  if len(initial) >= vocab_size:
    logging.warning('vocab_size=%d leaves no room for learnt pieces after '
                    '%d specials and characters', vocab_size, len(initial))
  known = frozenset(alphabet)
  counts = {w: n for w, n in counts.items() if known.issuperset(w)}
  tok = tokenizers.Tokenizer(models.WordPiece(unk_token=wordpiece.UNK))
  # The words are already normalised and split: only split them apart again.
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  trainer = trainers.WordPieceTrainer(
      vocab_size=vocab_size,
      min_frequency=min_frequency,
      special_tokens=initial,
      continuing_subword_prefix='##',
      show_progress=False)
  tok.train_from_iterator(_repeat_words(counts), trainer=trainer)
  with tempfile.TemporaryDirectory() as tmp:  # tokenizers writes local files.
    tok.model.save(tmp)  # Writes vocab.txt.
    # Reloaded rather than returned as is: the freshly trained object has no
    # [CLS]/[SEP] handling and treats every character as special; this also
    # checks that the written file loads.
    wordpiece.WordPieceTokenizer(
        os.path.join(tmp, wordpiece.VOCAB_FILE),
        do_lower_case=do_lower_case).save(out_dir)
  return wordpiece.WordPieceTokenizer(
      os.path.join(out_dir, wordpiece.VOCAB_FILE), do_lower_case=do_lower_case)


def _alphabet(counts: Mapping[str, int], limit: int) -> list[str]:
  """The `limit` most frequent characters (ties by code point), sorted."""
  chars = collections.Counter()
  for word, n in counts.items():
    for c in word:
      chars[c] += n
  kept = sorted(chars.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
  return sorted(c for c, _ in kept)


def _repeat_words(counts: Mapping[str, int],
                  chunk: int = 1024) -> Iterator[str]:
  """Strings that, split on spaces, hold each word as often as counted."""
  for word in sorted(counts):
    n = counts[word]
    while n > 0:
      k = min(n, chunk)
      yield ' '.join([word] * k)
      n -= k


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int,
    out_dir: str,
    do_lower_case: bool = False,
    model_type: str = 'unigram') -> sentencepiece_tok.SentencePieceTokenizer:
  """Trains a SentencePiece model with BERT's specials at ids 0-4.

  Args:
    texts: Sentences, one per string (SentencePiece skips strings longer than
      4192 bytes).
    vocab_size: Target size, specials included; a soft limit, so a small
      corpus gives a smaller vocabulary instead of an error.
    out_dir: Folder for spiece.model and tokenizer_config.json;
      created if needed.
    do_lower_case: Lower-case text before training (and before encoding).
    model_type: SentencePiece's algorithm: 'unigram' or 'bpe'.

  Returns:
    The tokenizer, loaded from the written spiece.model.
  """
  _check_vocab_size(vocab_size)
  if model_type not in ('unigram', 'bpe'):
    raise ValueError(
        f"model_type must be 'unigram' or 'bpe', got {model_type!r}")
  sentences = (t.lower() if do_lower_case else t for t in texts)
  # Seed sampling inside the trainer too, for run-to-run identical models.
  spm.set_random_generator_seed(0)
  # Written to memory, not through `model_prefix`: the model file would
  # record that path, so the same corpus would give different files.
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=(s for s in sentences if s.strip()),
      model_writer=model,
      vocab_size=vocab_size,
      model_type=model_type,
      **_SP_OPTIONS)
  storage.makedirs(out_dir)
  path = os.path.join(out_dir, sentencepiece_tok.MODEL_FILE)
  with storage.open_file(path, 'wb') as f:
    f.write(model.getvalue())
  result = sentencepiece_tok.SentencePieceTokenizer(
      path, do_lower_case=do_lower_case)
  result.save(out_dir)
  return result


_TRAINERS: dict[str, Callable[..., tokenizer_lib.Tokenizer]] = {
    'wordpiece': train_wordpiece,
    'sentencepiece': train_sentencepiece,
}


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int,
                    out_dir: str, **kw) -> tokenizer_lib.Tokenizer:
  """Trains a tokenizer of the given kind; see `train_wordpiece` and
  `train_sentencepiece` for the arguments `kw` may hold.

  Raises:
    ValueError: If `kind` is not 'wordpiece' or 'sentencepiece'.
  """
  if kind not in _TRAINERS:
    raise ValueError(
        f'unknown tokenizer kind {kind!r}; expected one of {sorted(_TRAINERS)}')
  return _TRAINERS[kind](texts, vocab_size, out_dir, **kw)


def _check_vocab_size(vocab_size: int) -> None:
  # Five specials plus at least a handful of characters.
  if vocab_size < 10:
    raise ValueError(f'vocab_size must be >= 10, got {vocab_size}')
