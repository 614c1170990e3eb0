"""GLUE metrics against hand-computed cases and SciPy's definitions."""

import warnings

import numpy as np
import pytest

from bert_jax.tasks import metrics


def test_accuracy_and_binary_f1_from_known_counts():
  # TP=3, FN=2, FP=1, TN=2.
  y = [1, 1, 1, 1, 1, 0, 0, 0]
  p = [1, 1, 1, 0, 0, 1, 0, 0]
  assert metrics.accuracy(p, y) == pytest.approx(5 / 8)
  assert metrics.f1(p, y) == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
  # Class 0 as the positive one: TP=2, FP=2, FN=1.
  assert metrics.f1(p, y, positive=0) == pytest.approx(4 / 7)


def test_f1_without_any_positive_is_zero():
  assert metrics.f1([0, 0, 0], [0, 0, 0]) == 0.0


def test_macro_f1_averages_per_class_f1():
  y = [0, 0, 1, 1, 2, 2]
  p = [0, 1, 1, 1, 2, 0]
  # class 0: 2*1/(2+1+1); class 1: 2*2/(4+1); class 2: 2*1/(2+0+1).
  assert metrics.macro_f1(p, y) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
  # Averaging over a class nobody used pulls the mean down with its 0.
  assert metrics.macro_f1(p, y, labels_set=[0, 1, 2, 3]) == pytest.approx(
      (0.5 + 0.8 + 2 / 3) / 4)


@pytest.mark.parametrize('preds,labels,want', [
    ([1, 1, 1, 1], [0, 1, 0, 1], 0.0),           # constant predictor
    ([0, 1, 0, 1], [1, 1, 1, 1], 0.0),           # constant labels
    ([0, 1, 1, 0], [0, 1, 1, 0], 1.0),           # perfect
    ([1, 0, 0, 1], [0, 1, 1, 0], -1.0),          # inverted
    ([1, -1, 1, 1], [1, 1, 1, -1], -1 / 3),      # sklearn's docstring case
    ([1, 1, 0, 0, 0, 1], [1, 1, 1, 0, 0, 0], 1 / 3),  # TP=TN=2, FP=FN=1
    # 3 classes: C=[[1,1,0],[0,2,0],[1,0,1]] -> 12 / sqrt(22 * 24).
    ([0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 2, 2], 12 / np.sqrt(22 * 24)),
])
def test_matthews_corrcoef(preds, labels, want):
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    assert metrics.matthews_corrcoef(preds, labels) == pytest.approx(want)


def test_average_ranks_share_ties():
  np.testing.assert_allclose(metrics.average_ranks([10, 20, 20, 30]),
                             [1, 2.5, 2.5, 4])
  np.testing.assert_allclose(metrics.average_ranks([3.0, 1.0, 3.0, 3.0, 0.5]),
                             [4, 2, 4, 4, 1])


def test_pearson_and_spearman_by_hand():
  assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
  assert metrics.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
  # Ranks (1,2,3) vs (1,3,2): 1 - 6 * 2 / (3 * 8).
  assert metrics.spearman([1, 2, 3], [10, 30, 20]) == pytest.approx(0.5)
  # Monotone but not linear: Spearman 1, Pearson below 1.
  assert metrics.spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
  assert metrics.pearson([1, 2, 3, 4], [1, 8, 27, 64]) < 0.99


def test_pearson_and_spearman_with_ties_match_scipy():
  stats = pytest.importorskip('scipy.stats')
  x = np.array([1, 2, 2, 3, 5, 5, 5, 0.5])
  y = np.array([2, 1, 4, 4, 3, 6, 7, 7])
  assert metrics.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
  assert metrics.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
  np.testing.assert_allclose(metrics.average_ranks(x), stats.rankdata(x))


@pytest.mark.parametrize('const', [[1, 1, 1, 1], [0.1, 0.1, 0.1, 0.1]])
def test_constant_input_gives_zero_correlation_quietly(const):
  with warnings.catch_warnings():
    warnings.simplefilter('error')  # SciPy would warn and return NaN.
    assert metrics.pearson(const, [1, 2, 3, 4]) == 0.0
    assert metrics.spearman([1, 2, 3, 4], const) == 0.0
    assert metrics.glue_metrics('stsb', const, [1, 2, 3, 4])['corr'] == 0.0


@pytest.mark.parametrize('task,keys', [
    ('cola', {'mcc'}), ('sst2', {'accuracy'}), ('mnli', {'accuracy'}),
    ('qnli', {'accuracy'}), ('rte', {'accuracy'}), ('wnli', {'accuracy'}),
    ('mrpc', {'accuracy', 'f1', 'accuracy_and_f1'}),
    ('qqp', {'accuracy', 'f1', 'accuracy_and_f1'}),
    ('stsb', {'pearson', 'spearman', 'corr'}),
])
def test_glue_metric_names(task, keys):
  preds, labels = [0, 1, 1, 0, 1], [0, 1, 0, 0, 1]
  out = metrics.glue_metrics(task, preds, labels)
  assert set(out) == keys == set(metrics.GLUE_METRICS[task])
  if 'accuracy_and_f1' in out:
    assert out['accuracy_and_f1'] == pytest.approx((out['accuracy'] + out['f1']) / 2)
  if 'corr' in out:
    assert out['corr'] == pytest.approx((out['pearson'] + out['spearman']) / 2)


def test_local_metric_sets():
  assert set(metrics.classification_metrics([0, 1], [0, 1], 2)) == {
      'accuracy', 'macro_f1', 'mcc', 'f1'}
  assert set(metrics.classification_metrics([0, 2], [0, 1], 3)) == {
      'accuracy', 'macro_f1', 'mcc'}
  out = metrics.regression_metrics([1.0, 2.0, 4.0], [1.0, 2.0, 3.0])
  assert out['mse'] == pytest.approx(1 / 3)
  assert set(out) == {'pearson', 'spearman', 'mse'}


def test_bad_inputs_fail_loudly():
  with pytest.raises(ValueError, match='3 predictions but 2 labels'):
    metrics.accuracy([0, 1, 1], [0, 1])
  with pytest.raises(ValueError, match='no examples'):
    metrics.pearson([], [])
  with pytest.raises(ValueError, match='Unknown GLUE task'):
    metrics.glue_metrics('sts', [0.0], [0.0])
