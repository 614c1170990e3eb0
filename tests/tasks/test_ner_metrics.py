"""Entity scores against hand-computed cases (seqeval's default mode)."""

import pytest

from bert_jax.tasks import ner_metrics as nm


def test_entities_bio_and_iob1_starts():
  seqs = [['B-PER', 'I-PER', 'O', 'I-LOC', 'I-LOC', 'B-LOC', 'I-ORG'],
          ['I-MISC', 'B-MISC', 'I-MISC']]
  # I- after O starts an entity; I- of another type starts a new one; the
  # second sentence's offsets follow the 'O' seqeval puts between sentences.
  assert nm.get_entities(seqs) == [
      ('PER', 0, 1), ('LOC', 3, 4), ('LOC', 5, 5), ('ORG', 6, 6),
      ('MISC', 8, 8), ('MISC', 9, 10)]


def test_no_entity_crosses_a_sentence_boundary():
  assert nm.get_entities([['B-PER'], ['I-PER']]) == [('PER', 0, 0),
                                                     ('PER', 2, 2)]


def test_exact_match_scores_one():
  y = [['B-PER', 'I-PER', 'O', 'B-LOC']]
  m = nm.ner_metrics(y, y)
  assert m['precision'] == m['recall'] == m['f1'] == 1.0
  assert m['token_accuracy'] == 1.0
  assert m['support_PER'] == 1.0 and m['f1_LOC'] == 1.0


def test_partial_span_is_a_false_positive_and_a_false_negative():
  gold = [['B-ORG', 'I-ORG', 'I-ORG', 'O', 'B-PER']]
  pred = [['B-ORG', 'I-ORG', 'O', 'O', 'B-PER']]
  s = nm.entity_scores(gold, pred)
  # PER right; ORG[0:1] predicted vs ORG[0:2] gold: 1 TP of 2 pred, 2 gold.
  assert s['precision'] == pytest.approx(0.5)
  assert s['recall'] == pytest.approx(0.5)
  assert s['f1'] == pytest.approx(0.5)
  assert s['per_type']['ORG'] == {'precision': 0.0, 'recall': 0.0, 'f1': 0.0,
                                  'support': 1}
  assert nm.token_accuracy(gold, pred) == pytest.approx(4 / 5)


def test_type_mismatch_counts_against_both_types():
  gold = [['B-PER', 'I-PER', 'O'], ['B-LOC']]
  pred = [['B-ORG', 'I-ORG', 'O'], ['B-LOC']]
  m = nm.ner_metrics(gold, pred)
  assert m['precision'] == pytest.approx(0.5)
  assert m['recall'] == pytest.approx(0.5)
  assert m['f1_PER'] == 0.0 and m['support_PER'] == 1.0
  # A type seen only in predictions is reported with support 0.
  assert m['precision_ORG'] == 0.0 and m['support_ORG'] == 0.0
  assert m['f1_LOC'] == 1.0


def test_i_tag_starting_a_span_matches_a_b_tag_span():
  gold = [['O', 'B-LOC', 'I-LOC', 'O']]
  pred = [['O', 'I-LOC', 'I-LOC', 'O']]
  assert nm.entity_scores(gold, pred)['f1'] == 1.0
  assert nm.token_accuracy(gold, pred) == pytest.approx(0.75)


def test_hand_computed_micro_average():
  gold = [['B-PER', 'I-PER', 'O', 'B-LOC', 'O', 'B-ORG'],
          ['B-MISC', 'O', 'B-PER']]
  pred = [['B-PER', 'I-PER', 'O', 'B-LOC', 'I-LOC', 'O'],
          ['B-MISC', 'O', 'B-LOC']]
  # gold: PER PER LOC ORG MISC (5); pred: PER LOC[3:4] MISC LOC (4); TP: PER, MISC.
  s = nm.entity_scores(gold, pred)
  assert s['precision'] == pytest.approx(2 / 4)
  assert s['recall'] == pytest.approx(2 / 5)
  assert s['f1'] == pytest.approx(2 * 0.5 * 0.4 / 0.9)
  assert s['support'] == 5
  assert s['per_type']['PER'] == pytest.approx(
      {'precision': 1.0, 'recall': 0.5, 'f1': 2 / 3, 'support': 2})


def test_empty_predictions_give_zero_without_division_errors():
  gold = [['B-PER', 'O'], ['B-LOC']]
  pred = [['O', 'O'], ['O']]
  m = nm.ner_metrics(gold, pred)
  assert m['precision'] == m['recall'] == m['f1'] == 0.0
  assert m['precision_PER'] == 0.0 and m['support_LOC'] == 1.0
  # No entities anywhere, and no words at all.
  assert nm.ner_metrics([['O']], [['O']])['f1'] == 0.0
  assert nm.ner_metrics([], []) == {'precision': 0.0, 'recall': 0.0,
                                    'f1': 0.0, 'token_accuracy': 0.0}


def test_length_mismatch_names_the_sentence():
  with pytest.raises(ValueError, match='sentence 1: 2 gold tags but 1'):
    nm.entity_scores([['O'], ['O', 'O']], [['O'], ['O']])
  with pytest.raises(ValueError, match='2 gold sentences but 1'):
    nm.token_accuracy([['O'], ['O']], [['O']])
  with pytest.raises(TypeError, match='one per sentence'):
    nm.get_entities(['B-PER', 'O'])
