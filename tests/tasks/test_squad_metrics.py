"""The official SQuAD EM/F1 rules, by hand-worked cases."""

import pytest

from bert_jax.tasks import squad_metrics as sm


@pytest.mark.parametrize('text, want', [
    ('The Eiffel Tower!', 'eiffel tower'),
    ('an apple, a pear and the   plum.', 'apple pear and plum'),
    ('Theatre and another anthem', 'theatre and another anthem'),  # Not words.
    ('A.B.C.', 'abc'),
    ('  \tDenver\nBroncos ', 'denver broncos'),
    ('', ''),
])
def test_normalize_answer(text, want):
  assert sm.normalize_answer(text) == want


def test_exact_match_ignores_case_punctuation_and_articles():
  assert sm.exact_match('the Eiffel Tower', 'Eiffel tower.') == 1.0
  assert sm.exact_match('Eiffel Tower', 'Tower') == 0.0


def test_f1_partial_overlap():
  # gold {big, red, dog}, pred {red, dog, barked}: P = R = 2/3.
  assert sm.f1_score('the big red dog', 'red dog barked') == pytest.approx(2 / 3)
  # Repeated tokens count once per occurrence in both: common {x: 1, y: 1}.
  assert sm.f1_score('x x y', 'x y y') == pytest.approx(2 / 3)
  assert sm.f1_score('Denver', 'Broncos') == 0.0
  # P = 1, R = 1/2.
  assert sm.f1_score('Denver Broncos', 'the Broncos') == pytest.approx(2 / 3)


def test_empty_answers_follow_the_v2_rule():
  assert sm.f1_score('', '') == 1.0
  assert sm.f1_score('', 'Broncos') == 0.0
  assert sm.f1_score('Broncos', '') == 0.0
  # An answer that normalises to nothing counts as empty.
  assert sm.f1_score('the', '') == 1.0
  assert sm.gold_texts([]) == ['']
  assert sm.gold_texts(['the', 'Broncos']) == ['Broncos']


def test_evaluate_takes_the_best_gold_answer():
  answers = {'q1': ['Denver Broncos', 'Broncos'], 'q2': ['Carolina Panthers']}
  preds = {'q1': 'the Broncos', 'q2': 'Panthers of Carolina'}
  m = sm.evaluate(answers, preds)
  assert m['exact_match'] == pytest.approx(0.5)
  # q1: 1; q2 vs 'carolina panthers': P = 2/3, R = 1, F1 = 0.8.
  assert m['f1'] == pytest.approx((1 + 0.8) / 2)
  assert set(m) == {'exact_match', 'f1'}


def test_evaluate_v2_breakdown():
  answers = {'h1': ['Rollo'], 'h2': ['France'], 'n1': [], 'n2': []}
  preds = {'h1': 'Rollo', 'h2': '', 'n1': '', 'n2': 'Denmark'}
  m = sm.evaluate(answers, preds, version_2=True)
  assert m['exact_match'] == pytest.approx(0.5)
  assert m['f1'] == pytest.approx(0.5)
  assert m['HasAns_exact'] == pytest.approx(0.5)
  assert m['HasAns_f1'] == pytest.approx(0.5)
  assert m['NoAns_exact'] == pytest.approx(0.5)
  assert m['NoAns_f1'] == pytest.approx(0.5)
  assert m['HasAns_total'] == 2 and m['NoAns_total'] == 2


def test_best_threshold_uses_non_null_answers():
  answers = {'h1': ['Rollo'], 'h2': ['France'], 'n1': []}
  non_null = {'h1': 'Rollo', 'h2': 'France', 'n1': 'Norway'}
  # Made with threshold 0: h2 (odds 1.0) was predicted null, wrongly.
  preds = {'h1': 'Rollo', 'h2': '', 'n1': ''}
  odds = {'h1': -2.0, 'h2': 1.0, 'n1': 3.0}
  m = sm.evaluate(answers, preds, version_2=True, null_odds=odds,
                  non_null_predictions=non_null)
  assert m['exact_match'] == pytest.approx(2 / 3)
  # Any threshold in [1, 3) gets all three right; the search reports 1.0.
  assert m['best_exact'] == pytest.approx(1.0)
  assert m['best_exact_thresh'] == pytest.approx(1.0)
  assert m['best_f1'] == pytest.approx(1.0)


def test_best_threshold_counts_empty_normalised_answers_wrong():
  # The official find_best_thresh scores a no-answer question -1 for any
  # non-empty prediction below the threshold, even one that normalises to ''.
  answers = {'n1': [], 'h1': ['Rollo']}
  odds = {'n1': 0.0, 'h1': 1.0}
  for junk in ('the', ','):
    non_null = {'n1': junk, 'h1': 'Rollo'}
    # The plain score calls it right, as the official compute_exact does.
    assert sm.score_question([], junk) == (1.0, 1.0)
    m = sm.evaluate(answers, non_null, version_2=True, null_odds=odds,
                    non_null_predictions=non_null)
    # Threshold 1.0 lowers n1 too: (0 + 1) / 2. Below 0, both null: 1 / 2.
    assert m['best_exact'] == pytest.approx(0.5), junk
    assert m['best_f1'] == pytest.approx(0.5), junk
  # An empty non-null answer (no span at all) costs nothing, as there.
  m = sm.evaluate(answers, {'n1': '', 'h1': 'Rollo'}, version_2=True,
                  null_odds=odds)
  assert m['best_exact'] == pytest.approx(1.0)


def test_best_threshold_all_null_and_ties():
  has = {'a': False, 'b': True}
  # The answer to b is wrong: predicting null everywhere is best.
  score, thresh = sm.best_threshold({'a': 0.0, 'b': 0.0}, has,
                                    {'a': 2.0, 'b': 5.0})
  assert score == pytest.approx(0.5) and thresh < 2.0
  # Equal odds cannot be split: a (wrong as non-null) drags b along.
  score, _ = sm.best_threshold({'a': 0.0, 'b': 1.0}, has, {'a': 1.0, 'b': 1.0})
  assert score == pytest.approx(0.5)


def test_missing_prediction_fails_naming_it():
  with pytest.raises(ValueError, match=r"1 of 2 questions have no prediction.*'q2'"):
    sm.evaluate({'q1': ['a'], 'q2': ['b']}, {'q1': 'a'})
