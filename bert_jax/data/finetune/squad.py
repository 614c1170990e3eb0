"""SQuAD data: TFDS ``squad``, local SQuAD JSON, and sliding-window features.

Readers (in `squad_readers`, re-exported here) give `SquadExample`s:

* `load_tfds('squad/v1.1' | 'squad/v2.0', split)` reads TFDS through
  ``tfds.data_source`` (array_record, no TensorFlow). Prepare it once with
  ``tfds build squad/v1.1 --file_format=array_record`` (or let TFDS download
  and prepare it on first use, where there is network access).
* `read_squad_json(path)` reads the official SQuAD file format and checks
  every answer against its context, naming the file and the JSON path of
  anything wrong.

`convert_examples` turns examples into fixed-shape features exactly as
BERT's ``run_squad.py`` does: the context is split on whitespace into words,
each word is tokenized on its own (the tokenizer interface has no character
offsets, and words give the map back to the original text), the question is
cut to ``max_query_length`` tokens, and the document tokens are covered by
windows ``doc_stride`` apart, each laid out as ``[CLS] query [SEP] window
[SEP]``. `answer_text` maps a token span of a window back to the context.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import re
from typing import Any
import unicodedata

from absl import logging
import numpy as np

# The readers live in squad_readers; their names are importable from here too.
from bert_jax.data.finetune.squad_readers import is_version_2
from bert_jax.data.finetune.squad_readers import load_tfds
from bert_jax.data.finetune.squad_readers import read_squad_json
from bert_jax.data.finetune.squad_readers import SquadExample

__all__ = [
    'SquadExample', 'is_version_2', 'load_tfds', 'read_squad_json',
    'NOT_DOC', 'MODEL_KEYS', 'split_words', 'doc_windows',
    'max_context_window', 'SquadFeatures', 'check_lengths',
    'convert_examples', 'answer_text',
]

# Word index of tokens outside the document (query, specials, padding).
NOT_DOC = -1
MODEL_KEYS = ('input_ids', 'token_type_ids', 'attention_mask')


# --- Words of a context (BERT's whitespace split). ---


# BERT's whitespace: what str.isspace() calls space (as regex \s does), and
# U+202F (narrow no-break space).
_WORD = re.compile(r'[^\s\u202f]+')


def _is_whitespace(c: str) -> bool:
  return c.isspace() or c == '\u202f'


def split_words(context: str) -> tuple[list[str], np.ndarray, np.ndarray]:
  """Whitespace words of CONTEXT, their [start, end) chars, and char -> word.

  As in ``run_squad.py``, a whitespace character maps to the word before it
  (-1 before the first word).
  """
  matches = list(_WORD.finditer(context))
  spans = np.asarray([m.span() for m in matches], np.int32).reshape(-1, 2)
  char_to_word = np.searchsorted(spans[:, 0], np.arange(len(context)),
                                 side='right') - 1
  return [m.group() for m in matches], spans, char_to_word.astype(np.int32)


@dataclasses.dataclass
class _Doc:
  """A tokenized context: word spans and the token <-> word maps."""
  word_spans: np.ndarray      # [W, 2] character [start, end) per word
  char_to_word: np.ndarray    # [C]
  ids: list[int]              # document tokens
  tok_to_word: np.ndarray     # [T]
  word_to_tok: np.ndarray     # [W + 1] first token of each word; T at the end


def _tokenize_docs(contexts: Sequence[str], tokenizer) -> dict[str, _Doc]:
  """Tokenizes each distinct context once (SQuAD asks ~5 questions each)."""
  distinct = list(dict.fromkeys(contexts))
  split = [split_words(c) for c in distinct]
  # Each distinct word once (a word's pieces do not depend on its context),
  # in one batched call that the Rust tokenizer spreads over threads.
  vocab = list(dict.fromkeys(w for words, _, _ in split for w in words))
  pieces = dict(zip(vocab, (ids for ids, _ in tokenizer.encode_words_batch(
      vocab)))) if vocab else {}
  docs = {}
  for context, (words, spans, c2w) in zip(distinct, split):
    ids, tok_to_word, word_to_tok = [], [], []
    for w, word in enumerate(words):
      word_to_tok.append(len(ids))
      ids.extend(pieces[word])
      tok_to_word.extend([w] * len(pieces[word]))
    word_to_tok.append(len(ids))
    docs[context] = _Doc(spans, c2w, ids, np.asarray(tok_to_word, np.int32),
                         np.asarray(word_to_tok, np.int32))
  return docs


def _answer_tokens(ex: SquadExample, doc: _Doc, answer_ids: list[int]
                   ) -> tuple[int, int] | None:
  """Document token span of the first answer, or None if it is not found."""
  text, start = ex.answers[0], ex.answer_starts[0]
  end_char = start + len(text) - 1
  if not 0 <= start <= end_char < len(doc.char_to_word):
    return None
  w0, w1 = int(doc.char_to_word[start]), int(doc.char_to_word[end_char])
  # run_squad.py's check that the words really hold the answer.
  s0, s1 = doc.word_spans[max(w0, 0)][0], doc.word_spans[w1][1]
  if w0 < 0 or ' '.join(text.split()) not in ' '.join(ex.context[s0:s1].split()):
    return None
  t0, t1 = int(doc.word_to_tok[w0]), int(doc.word_to_tok[w1 + 1]) - 1
  if t1 < t0:  # The answer's words produced no tokens at all.
    return None
  # _improve_answer_span: the tightest token span equal to the answer's own
  # tokens ('1990' inside the word '(1990),').
  for a in range(t0, t1 + 1):
    for b in range(t1, a - 1, -1):
      if doc.ids[a:b + 1] == answer_ids:
        return a, b
  return t0, t1


def doc_windows(num_tokens: int, max_tokens: int, stride: int
                ) -> list[tuple[int, int]]:
  """(start, length) of the windows over a document, as run_squad.py."""
  spans, start = [], 0
  while start < num_tokens:
    length = min(num_tokens - start, max_tokens)
    spans.append((start, length))
    if start + length == num_tokens:
      break
    start += min(length, stride)
  # An empty context still gets one (empty) window, so every question gets
  # a feature and hence a prediction.
  return spans or [(0, 0)]


def max_context_window(spans: Sequence[tuple[int, int]], num_tokens: int
                       ) -> np.ndarray:
  """[T] index of the window that gives each token the most context.

  run_squad.py's ``_check_is_max_context``: score = min(left, right context)
  + 0.01 * window length; the first window wins ties.
  """
  pos = np.arange(num_tokens)[None, :]
  start = np.asarray([s for s, _ in spans])[:, None]
  length = np.asarray([n for _, n in spans])[:, None]
  end = start + length - 1
  score = np.minimum(pos - start, end - pos) + 0.01 * length
  score = np.where((pos >= start) & (pos <= end), score, -np.inf)
  return np.argmax(score, axis=0)


@dataclasses.dataclass
class SquadFeatures:
  """Windows of a list of examples.

  Attributes:
    arrays: Fixed-shape arrays, one row per window: ``input_ids``,
      ``token_type_ids``, ``attention_mask`` [N, L] int32,
      ``start_positions``, ``end_positions`` [N] int32 (0 = [CLS]: no answer
      in this window) and ``example_index`` [N] int32.
    token_to_word: [N, L] int32, the context word of each document token,
      NOT_DOC (-1) elsewhere.
    token_is_max_context: [N, L] bool, whether this window gives the token
      the most context of all windows over it.
    word_spans: Per example, [W, 2] character spans of its context's words.
    num_skipped: Training examples dropped because the answer was not found
      at its ``answer_start``.
  """
  arrays: dict[str, np.ndarray]
  token_to_word: np.ndarray
  token_is_max_context: np.ndarray
  word_spans: list[np.ndarray]
  num_skipped: int = 0

  def __len__(self) -> int:
    return len(self.arrays['input_ids'])


def check_lengths(max_seq_length: int, doc_stride: int,
                  max_query_length: int) -> None:
  """Fails early on lengths that leave no room for the document."""
  if max_query_length < 1 or doc_stride < 1:
    raise ValueError(f'config.data.max_query_length={max_query_length} and '
                     f'config.data.doc_stride={doc_stride} must be >= 1.')
  if max_seq_length < max_query_length + 4:
    raise ValueError(
        f'config.data.max_seq_length={max_seq_length} leaves no room for the '
        f'document after config.data.max_query_length={max_query_length} '
        'question tokens and 3 special tokens; need max_seq_length >= '
        'max_query_length + 4.')


def convert_examples(examples: Sequence[SquadExample], tokenizer, *,
                     max_seq_length: int, doc_stride: int,
                     max_query_length: int, is_training: bool
                     ) -> SquadFeatures:
  """Sliding-window features of EXAMPLES, as BERT's run_squad.py.

  Args:
    examples: The examples.
    tokenizer: A `bert_jax.text.Tokenizer`.
    max_seq_length: Tokens per window, specials and padding included.
    doc_stride: Tokens between the starts of consecutive windows.
    max_query_length: Longer questions are cut to this many tokens.
    is_training: Drop examples whose (first) answer is not found at its
      ``answer_start`` (run_squad.py's "Could not find answer"). Evaluation
      keeps every example: each needs a prediction.

  Returns:
    `SquadFeatures`; ``example_index`` refers to positions in EXAMPLES.
  """
  check_lengths(max_seq_length, doc_stride, max_query_length)
  L = max_seq_length
  docs = _tokenize_docs([e.context for e in examples], tokenizer)
  queries = tokenizer.encode_words_batch([e.question for e in examples])
  has_answer = [bool(e.answers) and not e.is_impossible for e in examples]
  answers = tokenizer.encode_words_batch(
      [e.answers[0] for e, h in zip(examples, has_answer) if h])
  answers_it = iter(answers)
  rows: dict[str, list[Any]] = {k: [] for k in (
      *MODEL_KEYS, 'start_positions', 'end_positions', 'example_index',
      'token_to_word', 'token_is_max_context')}
  word_spans, skipped = [], 0
  for i, ex in enumerate(examples):
    doc = docs[ex.context]
    word_spans.append(doc.word_spans)
    span = _answer_tokens(ex, doc, next(answers_it)[0]) if has_answer[i] else None
    if has_answer[i] and span is None and is_training:
      skipped += 1
      continue
    query = list(queries[i][0][:max_query_length])
    offset = len(query) + 2  # [CLS] query [SEP]
    windows = doc_windows(len(doc.ids), L - offset - 1, doc_stride)
    best = max_context_window(windows, len(doc.ids))
    for w, (start, length) in enumerate(windows):
      ids = np.full(L, tokenizer.pad_id, np.int32)
      n = offset + length + 1
      ids[:n] = ([tokenizer.cls_id] + query + [tokenizer.sep_id]
                 + doc.ids[start:start + length] + [tokenizer.sep_id])
      types = np.zeros(L, np.int32)
      types[offset:n] = 1
      to_word = np.full(L, NOT_DOC, np.int32)
      to_word[offset:offset + length] = doc.tok_to_word[start:start + length]
      is_max = np.zeros(L, bool)
      is_max[offset:offset + length] = best[start:start + length] == w
      s = e = 0
      if span is not None and start <= span[0] and span[1] < start + length:
        s, e = span[0] - start + offset, span[1] - start + offset
      rows['input_ids'].append(ids)
      rows['token_type_ids'].append(types)
      rows['attention_mask'].append((np.arange(L) < n).astype(np.int32))
      rows['start_positions'].append(s)
      rows['end_positions'].append(e)
      rows['example_index'].append(i)
      rows['token_to_word'].append(to_word)
      rows['token_is_max_context'].append(is_max)
  if skipped:
    logging.warning('SQuAD: skipped %d of %d training examples whose answer '
                    'is not at its answer_start.', skipped, len(examples))
  stack = lambda k, dt, shape: (np.stack(rows[k]).astype(dt) if rows[k]
                                else np.zeros(shape, dt))
  arrays = {k: stack(k, np.int32, (0, L)) for k in MODEL_KEYS}
  for k in ('start_positions', 'end_positions', 'example_index'):
    arrays[k] = np.asarray(rows[k], np.int32)
  return SquadFeatures(arrays, stack('token_to_word', np.int32, (0, L)),
                       stack('token_is_max_context', bool, (0, L)),
                       word_spans, skipped)


# --- Token span -> original text. ---


_ASCII_SPACE = np.asarray([_is_whitespace(chr(i)) for i in range(128)])


def _normalized_chars(text: str, lower: bool) -> tuple[str, Sequence[int]]:
  """TEXT without whitespace (lower-cased, accents stripped if LOWER), and
  for each character kept, its index in TEXT."""
  if text.isascii():  # Most answers: one character in, one out; vectorized.
    codes = np.frombuffer((text.lower() if lower else text).encode(), np.uint8)
    index = np.flatnonzero(~_ASCII_SPACE[codes])
    return codes[index].tobytes().decode(), index
  out, index = [], []
  for i, c in enumerate(text):
    if _is_whitespace(c):
      continue
    if lower:
      c = ''.join(ch for ch in unicodedata.normalize('NFD', c.lower())
                  if unicodedata.category(ch) != 'Mn')
    out.append(c)
    index.extend([i] * len(c))
  return ''.join(out), index


def answer_text(features: SquadFeatures, examples: Sequence[SquadExample],
                feature: int, start: int, end: int, tokenizer) -> str:
  """The context text of tokens START..END (inclusive) of window FEATURE.

  The span's words give the text first (``'(1990),'``); it is then trimmed
  to the characters the tokens themselves cover (``'1990'``) by finding the
  decoded tokens in it, whitespace and case aside: run_squad.py's
  ``get_final_text``. When they cannot be found (a normalising SentencePiece
  model), the whole words are returned.

  A span holding an unknown token also gets its whole words, as in
  run_squad.py, whose ``[UNK]`` never matches the original text. Decoding
  would drop it instead (``decode`` skips special tokens), so the trimmed
  answer would lose the unknown word: ``'💩 500'`` would come back as
  ``'500'``.
  """
  ex_index = int(features.arrays['example_index'][feature])
  spans = features.word_spans[ex_index]
  context = examples[ex_index].context
  w0 = int(features.token_to_word[feature, start])
  w1 = int(features.token_to_word[feature, end])
  c0, c1 = int(spans[w0][0]), int(spans[w1][1])
  words = context[c0:c1]
  ids = features.arrays['input_ids'][feature, start:end + 1]
  if np.any(ids == tokenizer.unk_id):
    return words
  pred, _ = _normalized_chars(tokenizer.decode(ids), tokenizer.do_lower_case)
  orig, index = _normalized_chars(words, tokenizer.do_lower_case)
  at = orig.find(pred) if pred else -1
  if at < 0:
    return words
  return words[int(index[at]):int(index[at + len(pred) - 1]) + 1]
