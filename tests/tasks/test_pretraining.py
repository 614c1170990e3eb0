"""The pretraining task's masking: random replacements come from the
tokenizer's vocabulary, not the (possibly padded) model's."""

import types

import jax
import ml_collections
import numpy as np

from bert_jax.models import config_for_size
from bert_jax.tasks import pretraining
from bert_jax.train import setup as setup_lib
from tests.train import helpers

SPECIALS, MASK = (0, 1, 2, 3, 4), 4
TOKENIZER_VOCAB, MODEL_VOCAB = 60, 256  # The model's table padded, say to 128s.


def _task(tokenizer_vocab_size=MODEL_VOCAB):
  mc = config_for_size('tiny', vocab_size=MODEL_VOCAB, hidden_size=32,
                       num_heads=2, intermediate_size=64)
  data = ml_collections.ConfigDict(dict(
      objective='mlm', max_seq_length=32, max_predictions_per_seq=8,
      mask_rate=0.15, whole_word_masking=False))
  tok = types.SimpleNamespace(special_ids=SPECIALS, mask_id=MASK,
                              vocab_size=tokenizer_vocab_size)
  return pretraining.PretrainingTask('pretraining', data, tok, mc)


def _batch(batch=256, length=32):
  rs = np.random.RandomState(0)
  ids = rs.randint(5, TOKENIZER_VOCAB, (batch, length)).astype(np.int32)
  ids[:, 0], ids[:, -1] = 2, 3
  return {'input_ids': ids, 'attention_mask': np.ones_like(ids),
          'word_ids': np.tile(np.arange(length, dtype=np.int32), (batch, 1))}


def _random_replacements(task, seeds=8):
  batch = _batch()
  prepare = jax.jit(lambda b, rng: task.prepare(b, rng, True))
  drawn = []
  for seed in range(seeds):
    out = jax.device_get(prepare(batch, jax.random.key(seed)))
    new, old = out['input_ids'], batch['input_ids']
    drawn.append(new[(new != old) & (new != MASK)])
  return np.concatenate(drawn)


def test_random_replacements_come_from_the_tokenizer_vocabulary():
  drawn = _random_replacements(_task(tokenizer_vocab_size=TOKENIZER_VOCAB))
  assert drawn.size > 1000
  assert drawn.max() < TOKENIZER_VOCAB and not np.isin(drawn, SPECIALS).any()
  # Every real non-special id can be drawn.
  assert len(np.unique(drawn)) == TOKENIZER_VOCAB - len(SPECIALS)


def test_setup_passes_the_tokenizer_vocabulary(tmp_path):
  config = helpers.tiny_config('mlm')
  config.data.corpus = helpers.FIXTURE
  config.data.tokenizer = helpers.minilm_vocab()
  config.model.vocab_size = 30592  # 30522 padded to a multiple of 128.
  setup = setup_lib.build(config, str(tmp_path))
  assert setup.model_config.vocab_size == 30592
  assert setup.task.tokenizer_vocab_size == 30522


def test_a_masking_cap_is_named():
  """max_predictions_per_seq below mask_rate x length masks less than asked:
  masking.mask_tokens takes the smaller, so the task says so (issue 24)."""
  data = ml_collections.ConfigDict({'max_seq_length': 128, 'mask_rate': 0.3,
                                    'max_predictions_per_seq': 20})
  msg = pretraining.masking_cap(data)
  assert 'caps data.mask_rate=0.3' in msg and '>= 38' in msg
  data.max_predictions_per_seq = 39
  assert pretraining.masking_cap(data) == ''
  for arg in ('size=tiny,runlocal', 'size=tiny,runlocal,recipe=modern', 'size=base'):
    from bert_jax.configs import pretrain  # pylint: disable=g-import-not-at-top
    assert pretraining.masking_cap(pretrain.get_config(arg).data) == '', arg
