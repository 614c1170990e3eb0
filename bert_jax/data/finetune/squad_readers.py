"""SQuAD readers: TFDS ``squad`` and local SQuAD-format JSON -> `SquadExample`.

* `load_tfds('squad/v1.1' | 'squad/v2.0', split)` reads TFDS through
  `bert_jax.data.tfds_source` (array_record, no TensorFlow). Prepare it once
  with ``tfds build squad/v1.1 --file_format=array_record``.
* `read_squad_json(path)` reads the official SQuAD file format and checks
  every answer against its context, naming the file and the JSON path of
  anything wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import json
from typing import Any

from bert_jax.data import text_files
from bert_jax.data import tfds_source
from bert_jax.errors import UserInputError

@dataclasses.dataclass(frozen=True)
class SquadExample:
  """One question about one context.

  Attributes:
    qid: The question id (predictions are keyed by it).
    question: The question text.
    context: The paragraph the answer comes from.
    answers: Gold answer texts; empty for an unanswerable (v2) question.
    answer_starts: Character offset of each answer in ``context``.
    is_impossible: SQuAD v2: the context does not answer the question.
    title: The article title (informational).
  """
  qid: str
  question: str
  context: str
  answers: tuple[str, ...] = ()
  answer_starts: tuple[int, ...] = ()
  is_impossible: bool = False
  title: str = ''


def is_version_2(examples: Sequence[SquadExample]) -> bool:
  """True when any question is unanswerable (SQuAD v2 rules apply)."""
  return any(e.is_impossible for e in examples)


# --- TFDS. ---


def load_tfds(name: str, split: str, data_dir: str | None = None,
              max_examples: int = 0) -> list[SquadExample]:
  """Examples of a TFDS SQuAD split.

  Args:
    name: 'squad/v1.1' or 'squad/v2.0'.
    split: A TFDS split ('train', 'validation', 'train[:1%]', ...).
    data_dir: Where TFDS keeps prepared data (None or '': TFDS's default).
    max_examples: 0 = all; N > 0 keeps only the first N.

  Returns:
    The examples, in the order of the split. Answers are not checked against
    the context here; `convert_examples` skips misaligned training answers.

  Raises:
    RuntimeError: If the split cannot be opened (see `tfds_source`).
    ValueError: On a negative max_examples.
  """
  text = tfds_source.as_text
  examples = []
  for r in tfds_source.read_records(name, split, data_dir, max_examples):
    ans = r['answers']
    examples.append(SquadExample(
        qid=text(r['id']), question=text(r['question']),
        context=text(r['context']),
        answers=tuple(text(t) for t in ans['text']),
        answer_starts=tuple(int(s) for s in ans['answer_start']),
        is_impossible=bool(r.get('is_impossible', False)),
        title=text(r.get('title', ''))))
  return examples


# --- Local SQuAD JSON. ---


class _Json:
  """Typed field access that names the file and JSON path on failure."""

  def __init__(self, path: str):
    self.path = path

  def error(self, where: str, message: str) -> UserInputError:
    return UserInputError(f'{self.path}: {where}: {message}')

  def get(self, obj: Any, key: str, kind: type | tuple[type, ...], where: str,
          default: Any = ...) -> Any:
    if not isinstance(obj, dict):
      raise self.error(where, f'expected a JSON object, got {type(obj).__name__}')
    if key not in obj:
      if default is not ...:
        return default
      raise self.error(where, f'missing field {key!r}')
    value = obj[key]
    # bool is an int in Python; answer_start: true is not an offset.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
      names = kind.__name__ if isinstance(kind, type) else '/'.join(
          k.__name__ for k in kind)
      raise self.error(where, f'field {key!r} should be {names}, got '
                       f'{type(value).__name__} {value!r:.60}')
    return value


def read_squad_json(path: str, max_examples: int = 0) -> list[SquadExample]:
  """Examples of a SQuAD-format JSON file (v1.1 or v2.0).

  The file holds ``{"data": [{"title", "paragraphs": [{"context", "qas":
  [{"id", "question", "answers": [{"text", "answer_start"}],
  "is_impossible"?}]}]}]}``. A question with no answers is unanswerable
  (v2) unless it says ``"is_impossible": false``, which is an error.

  Args:
    path: The JSON file.
    max_examples: 0 = all; N > 0 keeps only the first N questions.

  Returns:
    The examples in file order.

  Raises:
    InputFileNotFoundError: If the file does not exist.
    UserInputError: If the file is empty, not UTF-8 JSON, not SQuAD-shaped,
      or an answer does not match its context at ``answer_start``; the
      message names the file and the JSON path (``data[0].paragraphs[2].
      qas[1]``) or line.
      Also on a negative max_examples.
  """
  max_examples = tfds_source.check_max_examples(max_examples)
  text_files.check_file(path, 'SQuAD file')
  raw = text_files.read_text(path)  # BOM, encoding: see text_files.
  if not raw.strip():
    raise UserInputError(f'{path} is empty; expected SQuAD JSON '
                         '{"data": [{"paragraphs": [...]}]}')
  try:
    top = json.loads(raw)
  except json.JSONDecodeError as e:
    raise UserInputError(f'{path}:{e.lineno}: not valid JSON ({e.msg}: '
                         f'column {e.colno}); expected SQuAD JSON.') from None
  j = _Json(path)
  examples: list[SquadExample] = []
  seen: dict[str, str] = {}
  for a, article in enumerate(j.get(top, 'data', list, '(top level)')):
    where_a = f'data[{a}]'
    title = j.get(article, 'title', str, where_a, default='')
    for p, para in enumerate(j.get(article, 'paragraphs', list, where_a)):
      where_p = f'{where_a}.paragraphs[{p}]'
      context = j.get(para, 'context', str, where_p)
      for q, qa in enumerate(j.get(para, 'qas', list, where_p)):
        if max_examples and len(examples) >= max_examples:
          return examples
        where = f'{where_p}.qas[{q}]'
        qid = j.get(qa, 'id', (str, int), where)
        qid = str(qid)
        if qid in seen:
          raise j.error(where, f'id {qid!r} is also the id of {seen[qid]}')
        seen[qid] = where
        question = j.get(qa, 'question', str, where)
        texts, starts = [], []
        for k, ans in enumerate(j.get(qa, 'answers', list, where, default=[])):
          where_k = f'{where}.answers[{k}]'
          text = j.get(ans, 'text', str, where_k)
          start = j.get(ans, 'answer_start', int, where_k)
          if not text.strip():
            raise j.error(where_k, 'answer text is empty; list no answers '
                          'for an unanswerable question instead')
          found = context[start:start + len(text)] if start >= 0 else ''
          if found != text:
            raise j.error(where_k, f'answer_start {start} does not match text '
                          f'{text!r} (the context there reads {found!r})')
          texts.append(text)
          starts.append(start)
        impossible = j.get(qa, 'is_impossible', bool, where, default=None)
        if impossible and texts:
          raise j.error(where, 'is_impossible is true but answers are given')
        if impossible is False and not texts:
          raise j.error(where, 'is_impossible is false but no answers are given')
        examples.append(SquadExample(
            qid=qid, question=question, context=context, answers=tuple(texts),
            answer_starts=tuple(starts), is_impossible=not texts, title=title))
  if not examples:
    raise UserInputError(f'{path} holds no questions (no data[].paragraphs[].qas[])')
  return examples
