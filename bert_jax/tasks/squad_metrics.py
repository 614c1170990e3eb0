"""The official SQuAD v1.1 / v2.0 evaluation: exact match and token F1.

This follows the official ``evaluate-v2.0.py`` (which scores v1.1 data the
same way as ``evaluate-v1.1.py``: v1.1 gold answers are never empty), with
two deliberate differences:

* Scores are fractions in [0, 1], like every other metric in bert_jax, not
  percentages.
* The v2 threshold search (``best_exact`` / ``best_f1``) can score each
  question's best *non-null* answer when it is below the threshold (pass
  ``non_null_predictions``). The official script only sees the final
  predictions, so a question already predicted null can never get its answer
  back at a higher threshold and the "best" threshold it reports is biased
  towards the one used to make the predictions.

The threshold search scores answers exactly as the official
``find_best_thresh`` does otherwise: below the threshold, a no-answer question
scores 0 for an empty answer and -1 for any other, even one that normalises to
nothing (``'the'``, ``','``), which the plain exact match would call right.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
import re
import string

_ARTICLES = re.compile(r'\b(a|an|the)\b', re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
  """Lower-cases, drops punctuation and articles, collapses whitespace."""
  s = s.lower()
  s = ''.join(ch for ch in s if ch not in _PUNCTUATION)
  s = _ARTICLES.sub(' ', s)
  return ' '.join(s.split())


def answer_tokens(s: str) -> list[str]:
  """The normalised words of an answer (empty for an empty answer)."""
  return normalize_answer(s).split() if s else []


def exact_match(gold: str, pred: str) -> float:
  """1.0 when the normalised strings are equal, else 0.0."""
  return float(normalize_answer(gold) == normalize_answer(pred))


def f1_score(gold: str, pred: str) -> float:
  """Token-overlap F1 of the normalised answers.

  When either side is empty (a v2 no-answer), F1 is the exact match: an
  empty prediction is fully right for a no-answer question and fully wrong
  for any other.
  """
  gold_toks, pred_toks = answer_tokens(gold), answer_tokens(pred)
  if not gold_toks or not pred_toks:
    return float(gold_toks == pred_toks)
  common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
  num_same = sum(common.values())
  if num_same == 0:
    return 0.0
  precision = num_same / len(pred_toks)
  recall = num_same / len(gold_toks)
  return 2 * precision * recall / (precision + recall)


def gold_texts(answers: Sequence[str]) -> list[str]:
  """Gold answers as the v2 script scores them: [''] for a no-answer question.

  Answers that normalise to nothing (e.g. just 'the') are dropped, as the
  official script does, so they cannot make an empty prediction right.
  """
  kept = [a for a in answers if normalize_answer(a)]
  return kept or ['']


def score_question(answers: Sequence[str], pred: str) -> tuple[float, float]:
  """(exact, f1) of one prediction: the max over its gold answers."""
  golds = gold_texts(answers)
  return (max(exact_match(g, pred) for g in golds),
          max(f1_score(g, pred) for g in golds))


def _mean(values: Sequence[float]) -> float:
  return float(sum(values) / len(values)) if values else 0.0


def best_threshold(non_null_scores: Mapping[str, float],
                   has_answer: Mapping[str, bool],
                   null_odds: Mapping[str, float]) -> tuple[float, float]:
  """The null-odds threshold that maximises a score, and that score.

  A question is predicted null when its null odds exceed the threshold;
  then it scores 1 if it has no answer. Otherwise it scores its non-null
  prediction's score.

  Args:
    non_null_scores: qid -> score (exact or F1) of its best non-null answer.
    has_answer: qid -> whether the question has a gold answer.
    null_odds: qid -> null score minus best non-null score (higher = more
      likely null); the same scale as ``null_score_diff_threshold``.

  Returns:
    (best mean score, threshold). When predicting null everywhere is best,
    the threshold is just below the smallest null odds.
  """
  qids = sorted(null_odds, key=lambda q: null_odds[q])
  if not qids:
    return 0.0, 0.0
  # Start with every question null, then lower questions below the
  # threshold one at a time, in order of their null odds.
  score = float(sum(not has_answer[q] for q in qids))
  best, thresh = score, null_odds[qids[0]] - 1.0
  for i, q in enumerate(qids):
    score += non_null_scores[q] - float(not has_answer[q])
    # Equal odds move together: a threshold cannot split them.
    tied_with_next = i + 1 < len(qids) and null_odds[qids[i + 1]] == null_odds[q]
    if score > best and not tied_with_next:
      best, thresh = score, null_odds[q]
  return best / len(qids), float(thresh)


def evaluate(answers: Mapping[str, Sequence[str]],
             predictions: Mapping[str, str],
             *,
             version_2: bool = False,
             null_odds: Mapping[str, float] | None = None,
             non_null_predictions: Mapping[str, str] | None = None
             ) -> dict[str, float]:
  """SQuAD metrics of PREDICTIONS against ANSWERS.

  Args:
    answers: qid -> gold answer texts (empty for a v2 no-answer question).
    predictions: qid -> predicted text ('' = no answer). Must cover every
      qid of ``answers``.
    version_2: Add the HasAns / NoAns breakdown.
    null_odds: qid -> null odds (v2); adds ``best_exact``, ``best_f1`` and
      their thresholds.
    non_null_predictions: qid -> best non-null answer, used by the threshold
      search (defaults to ``predictions``; see the module docstring).

  Returns:
    ``exact_match`` and ``f1`` (fractions), and for v2 ``HasAns_exact``,
    ``HasAns_f1``, ``NoAns_exact``, ``NoAns_f1`` (with ``*_total`` counts)
    and, given ``null_odds``, ``best_exact``, ``best_exact_thresh``,
    ``best_f1``, ``best_f1_thresh``.

  Raises:
    ValueError: If a question has no prediction.
  """
  missing = [q for q in answers if q not in predictions]
  if missing:
    raise ValueError(f'{len(missing)} of {len(answers)} questions have no '
                     f'prediction, e.g. {missing[:3]}')
  exact, f1 = {}, {}
  for qid, golds in answers.items():
    exact[qid], f1[qid] = score_question(golds, predictions[qid])
  out = {'exact_match': _mean(list(exact.values())),
         'f1': _mean(list(f1.values()))}
  if not version_2:
    return out
  # As the official script: a question has an answer when it lists any.
  has_answer = {q: bool(a) for q, a in answers.items()}
  for prefix, wanted in (('HasAns', True), ('NoAns', False)):
    qids = [q for q in answers if has_answer[q] == wanted]
    out[f'{prefix}_exact'] = _mean([exact[q] for q in qids])
    out[f'{prefix}_f1'] = _mean([f1[q] for q in qids])
    out[f'{prefix}_total'] = float(len(qids))
  if null_odds is not None:
    non_null = non_null_predictions or predictions
    nn_exact, nn_f1 = {}, {}
    for qid, golds in answers.items():
      if has_answer[qid] or not non_null[qid]:
        nn_exact[qid], nn_f1[qid] = score_question(golds, non_null[qid])
      else:
        # find_best_thresh: any non-empty answer to a no-answer question is
        # wrong, even one that normalises to '' (score_question calls that
        # right, as the official exact match does).
        nn_exact[qid] = nn_f1[qid] = 0.0
    odds = {q: float(null_odds[q]) for q in answers}
    out['best_exact'], out['best_exact_thresh'] = best_threshold(
        nn_exact, has_answer, odds)
    out['best_f1'], out['best_f1_thresh'] = best_threshold(
        nn_f1, has_answer, odds)
  return out
