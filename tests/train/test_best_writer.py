"""The best checkpoint written in the background: complete when waited for,
never a mix after a kill, errors raised in the loop."""

import os

import numpy as np
import pytest

from bert_jax import pretrained
from bert_jax.models import config_for_size
from bert_jax.text import load_tokenizer
from bert_jax.train import best_writer
from tests.train.helpers import minilm_vocab


def _params(v):
  return {'dense': {'kernel': np.full((3, 2), v, np.float32)}}


def test_background_write_then_replace(tmp_path):
  tok = load_tokenizer(minilm_vocab())
  mc = config_for_size('tiny', vocab_size=tok.vocab_size)
  best = str(tmp_path / 'best')
  preds = tmp_path / 'predictions'
  preds.mkdir()
  (preds / 'p.jsonl').write_text('first\n')
  w = best_writer.BestWriter(best, mc, tok)
  w.save(_params(1.0), {'task': 't', 'step': 1}, str(preds))
  # The predictions were copied before save() returned: rewriting is safe.
  (preds / 'p.jsonl').write_text('second\n')
  w.save(_params(2.0), {'task': 't', 'step': 2}, str(preds))
  w.wait()
  assert sorted(os.listdir(tmp_path)) == ['best', 'predictions']
  np.testing.assert_array_equal(
      pretrained.load_params(best)['dense']['kernel'], np.full((3, 2), 2.0))
  assert pretrained.load_task_metadata(best)['step'] == 2
  assert (tmp_path / 'best' / 'predictions' / 'p.jsonl').read_text() == 'second\n'
  assert pretrained.load_model_config(best) == mc

  # A kill between the two renames left only best.old: the next run restores
  # it and drops a half-written best.partial.
  os.rename(best, best + '.old')
  os.makedirs(best + '.partial')
  best_writer.BestWriter(best, mc, tok)
  assert sorted(os.listdir(tmp_path)) == ['best', 'predictions']
  assert pretrained.load_task_metadata(best)['step'] == 2


def test_error_in_the_thread_is_raised_by_wait(tmp_path):
  class BrokenTokenizer:
    def save(self, path):
      raise OSError(f'disk full writing {path}')

  mc = config_for_size('tiny', vocab_size=100)
  w = best_writer.BestWriter(str(tmp_path / 'best'), mc, BrokenTokenizer())
  w.save(_params(1.0), {'task': 't'})
  with pytest.raises(RuntimeError, match='disk full'):
    w.wait()
  assert not os.path.exists(tmp_path / 'best')  # Never half a checkpoint.
