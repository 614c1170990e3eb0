"""Entity-level NER scores, computed exactly as seqeval's default mode does.

seqeval's default (``mode=None``) is the conlleval.pl convention: chunks are
read from B-/I- (and E-/S-) prefixes leniently, so an ``I-X`` after ``O`` or
after another type starts a new entity (IOB1-tolerant). A predicted entity
counts as a true positive only if its type, first and last word all match a
gold entity; a partial overlap is one false positive plus one false negative.
Scores are micro averages over all entities, with per-type scores beside
them; an undefined ratio (nothing predicted, nothing gold) is 0, as seqeval's
``zero_division='warn'`` returns.
"""

from __future__ import annotations

from collections.abc import Sequence

Entity = tuple[str, int, int]  # (type, first word, last word), global offsets


def _split_tag(tag: str) -> tuple[str, str]:
  """('B', 'PER') from 'B-PER'; a bare tag such as 'O' has type '_'."""
  return tag[0], tag[1:].split('-', maxsplit=1)[-1] or '_'


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
  # The truth table of seqeval.metrics.sequence_labeling.end_of_chunk.
  if prev_tag in ('E', 'S'):
    return True
  if prev_tag in ('B', 'I') and tag in ('B', 'S', 'O'):
    return True
  return prev_tag not in ('O', '.') and prev_type != type_


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
  # The truth table of seqeval.metrics.sequence_labeling.start_of_chunk.
  if tag in ('B', 'S'):
    return True
  if prev_tag in ('E', 'S', 'O') and tag in ('E', 'I'):
    return True
  return tag not in ('O', '.') and prev_type != type_


def get_entities(sequences: Sequence[Sequence[str]]) -> list[Entity]:
  """Entities of a list of tag sequences, as seqeval's ``get_entities``.

  Like seqeval, the sentences are joined with an 'O' between them, so offsets
  are global and no entity crosses a sentence boundary.

  Args:
    sequences: One list of tags per sentence, e.g. [['B-PER', 'I-PER', 'O']].

  Returns:
    (type, start, end) per entity, end inclusive, in order.
  """
  flat: list[str] = []
  for seq in sequences:
    if isinstance(seq, str):
      raise TypeError('get_entities takes a list of tag sequences (one per '
                      f'sentence), got a sequence of strings ({seq!r} ...).')
    flat.extend(seq)
    flat.append('O')
  prev_tag, prev_type, begin = 'O', '', 0
  chunks = []
  for i, label in enumerate(flat + ['O']):
    tag, type_ = _split_tag(label)
    if _end_of_chunk(prev_tag, tag, prev_type, type_):
      chunks.append((prev_type, begin, i - 1))
    if _start_of_chunk(prev_tag, tag, prev_type, type_):
      begin = i
    prev_tag, prev_type = tag, type_
  return chunks


def _ratio(num: int, den: int) -> float:
  return num / den if den else 0.0


def _f1(p: float, r: float) -> float:
  return 2 * p * r / (p + r) if p + r else 0.0


def _check_lengths(y_true: Sequence[Sequence[str]],
                   y_pred: Sequence[Sequence[str]]) -> None:
  if len(y_true) != len(y_pred):
    raise ValueError(f'{len(y_true)} gold sentences but {len(y_pred)} predicted.')
  for i, (t, p) in enumerate(zip(y_true, y_pred)):
    if len(t) != len(p):
      raise ValueError(f'sentence {i}: {len(t)} gold tags but {len(p)} '
                       'predicted tags.')


def entity_scores(y_true: Sequence[Sequence[str]],
                  y_pred: Sequence[Sequence[str]]) -> dict:
  """Micro-averaged and per-type entity precision, recall and F1.

  Args:
    y_true: Gold tags, one list per sentence.
    y_pred: Predicted tags, same lengths.

  Returns:
    {'precision', 'recall', 'f1', 'support', 'per_type': {type: {'precision',
    'recall', 'f1', 'support'}}}; support counts gold entities. Types seen only
    in predictions are listed with support 0, as in seqeval's report.
  """
  _check_lengths(y_true, y_pred)
  gold, pred = set(get_entities(y_true)), set(get_entities(y_pred))
  per_type = {}
  for t in sorted({e[0] for e in gold} | {e[0] for e in pred}):
    g = {e for e in gold if e[0] == t}
    p = {e for e in pred if e[0] == t}
    tp = len(g & p)
    prec, rec = _ratio(tp, len(p)), _ratio(tp, len(g))
    per_type[t] = {'precision': prec, 'recall': rec, 'f1': _f1(prec, rec),
                   'support': len(g)}
  tp = len(gold & pred)
  prec, rec = _ratio(tp, len(pred)), _ratio(tp, len(gold))
  return {'precision': prec, 'recall': rec, 'f1': _f1(prec, rec),
          'support': len(gold), 'per_type': per_type}


def token_accuracy(y_true: Sequence[Sequence[str]],
                   y_pred: Sequence[Sequence[str]]) -> float:
  """Share of words whose predicted tag equals the gold tag ('O' included)."""
  _check_lengths(y_true, y_pred)
  total = sum(len(t) for t in y_true)
  right = sum(a == b for t, p in zip(y_true, y_pred) for a, b in zip(t, p))
  return _ratio(right, total)


def ner_metrics(y_true: Sequence[Sequence[str]],
                y_pred: Sequence[Sequence[str]]) -> dict[str, float]:
  """Flat metrics dict: precision, recall, f1, token_accuracy, and per type
  ``precision_PER``, ``recall_PER``, ``f1_PER``, ``support_PER``."""
  s = entity_scores(y_true, y_pred)
  out = {k: float(s[k]) for k in ('precision', 'recall', 'f1')}
  out['token_accuracy'] = token_accuracy(y_true, y_pred)
  for t, scores in s['per_type'].items():
    for k, v in scores.items():
      out[f'{k}_{t}'] = float(v)
  return out
