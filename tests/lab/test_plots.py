"""Report figures: training seconds read from the trainer's logged steps/s."""

import json

import pytest

from bert_jax.lab import plots
from bert_jax.lab import stats


def _write(path, records):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(''.join(json.dumps(r) + '\n' for r in records))


@pytest.fixture
def two_entries(tmp_path):
  # slow: 2 steps/s, fast: 4 steps/s; each logs every 10 steps, evals at 20.
  for name, sps in (('slow', 2.0), ('fast', 4.0)):
    for seed in (0, 1):
      recs = [{'step': s, 'split': 'train', 'loss': 5.0 - s / 10,
               'steps_per_sec': sps} for s in (10, 20)]
      recs.append({'step': 20, 'split': 'eval', 'mlm_accuracy': 0.1 + seed / 100})
      _write(tmp_path / f'{name}.seed{seed}' / 'metrics.jsonl', recs)
  groups = [{'name': n, 'trials': [{'name': f'{n}.seed{s}'} for s in (0, 1)]}
            for n in ('slow', 'fast')]
  return tmp_path, groups


def test_train_seconds(two_entries):
  """Each train record's steps/s covers the steps since the record before."""
  root, _ = two_entries
  assert plots.train_seconds(str(root / 'slow.seed0' / 'metrics.jsonl')) == {10: 5.0, 20: 10.0}
  assert plots.train_seconds(str(root / 'fast.seed0' / 'metrics.jsonl')) == {10: 2.5, 20: 5.0}
  _write(root / 'none' / 'metrics.jsonl', [{'step': 10, 'split': 'train', 'loss': 1.0}])
  assert plots.train_seconds(str(root / 'none' / 'metrics.jsonl')) == {}


def test_seconds_figure_drawn_only_with_steps_per_sec(two_entries, tmp_path):
  root, groups = two_entries
  out = tmp_path / 'fig.png'
  assert plots.learning_curves(groups, str(root), 'mlm_accuracy', str(out), x='seconds')
  assert out.stat().st_size > 0
  for name in ('slow', 'fast'):
    for seed in (0, 1):
      _write(root / f'{name}.seed{seed}' / 'metrics.jsonl',
             [{'step': 10, 'split': 'train', 'loss': 1.0}])
  assert not plots.learning_curves(groups, str(root), 'mlm_accuracy',
                                   str(tmp_path / 'none.png'), x='seconds')
  assert plots.learning_curves(groups, str(root), 'mlm_accuracy', str(tmp_path / 's.png'))


def test_by_length_skips_na(tmp_path):
  s = stats.summarize([5.0, 5.1, 5.2])
  series = {'alibi': {64: s, 128: s}, 'learned': {64: s, 128: None}}
  assert plots.by_length(series, 'mlm_loss', 64, str(tmp_path / 'a.png'))
  assert (tmp_path / 'a.png').stat().st_size > 0
  assert not plots.by_length({'learned': {128: None}}, 'mlm_loss', 64,
                             str(tmp_path / 'b.png'))
  assert not (tmp_path / 'b.png').exists()
