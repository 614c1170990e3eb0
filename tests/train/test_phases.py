"""Recipes (configs/pretrain.py:recipe=...) and the two-phase runner, with the
trainer faked: which configs each phase gets, resuming, early errors."""

import json
import os
import re

import pytest

from bert_jax.train import phases
from bert_jax.configs import pretrain


def test_recipes_set_what_they_say():
  bert = pretrain.get_config('size=tiny,runlocal')
  assert pretrain.get_config('size=tiny,runlocal,recipe=bert').to_dict() == bert.to_dict()
  assert bert.phase2.fraction == 0.0 and not phases.is_two_phase(bert)
  two = pretrain.get_config('size=base,recipe=bert_2phase')
  assert two.phase2.fraction == 0.1 and two.model.max_position_embeddings == 512
  assert two.data.max_seq_length == 128 and two.phase2.max_seq_length == 512
  modern = pretrain.get_config('size=base,recipe=modern')
  m = modern.model
  assert (m.norm_placement, m.mlp_type, m.position_embedding, m.use_bias,
          m.attention_dropout) == ('pre', 'geglu', 'rope', False, 0.0)
  assert m.intermediate_size == 2048  # 8/3 x 768: BERT-base's MLP parameters.
  assert modern.data.packing and modern.data.objective == 'mlm'
  assert modern.data.mask_rate == 0.3 and modern.data.max_predictions_per_seq == 39
  assert pretrain.get_config('recipe=modern,objective=mlm_sop').data.objective == 'mlm_sop'
  with pytest.raises(ValueError, match="recipe='roberta'"):
    pretrain.get_config('recipe=roberta')


def _tiny_two_phase():
  config = pretrain.get_config('size=tiny,runlocal,recipe=bert_2phase')
  config.train.num_steps = 20
  config.train.global_batch_size = 16
  return config


def test_two_phases_run_in_order_and_resume(tmp_path, monkeypatch):
  calls = []

  def fake_run(config, workdir):
    calls.append((config, workdir))
    os.makedirs(workdir, exist_ok=True)
    return {'step': config.train.num_steps}

  monkeypatch.setattr(phases.trainer, 'run', fake_run)
  workdir = str(tmp_path / 'run')
  phases.run(_tiny_two_phase(), workdir)
  (c1, d1), (c2, d2) = calls
  assert d1 == os.path.join(workdir, 'phase1') and d2 == workdir
  assert (c1.train.num_steps, c2.train.num_steps) == (18, 2)
  assert (c1.data.max_seq_length, c2.data.max_seq_length) == (128, 512)
  assert c2.data.max_predictions_per_seq == 80 and c2.init_from == d1
  assert c1.init_from == '' and c1.optim.warmup_steps == 100
  assert (c2.optim.warmup_steps, c2.optim.warmup_fraction) == (0, 0.1)
  assert c1.phase2.fraction == c2.phase2.fraction == 0.0  # Each is one phase.
  assert json.loads((tmp_path / 'run' / 'phase1' / 'phase_done.json').read_text()) == \
      {'step': 18}
  # A rerun (e.g. after a preemption in phase 2) goes straight to phase 2.
  calls.clear()
  phases.run(_tiny_two_phase(), workdir)
  assert [d for _, d in calls] == [workdir]


def test_phase_one_cut_short_does_not_start_phase_two(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(phases.trainer, 'run',
                      lambda c, d: calls.append(d) or {'step': 5})
  assert phases.run(_tiny_two_phase(), str(tmp_path)) == {'step': 5}
  assert calls == [str(tmp_path / 'phase1')]
  assert not (tmp_path / 'phase1' / 'phase_done.json').exists()


@pytest.mark.parametrize('change, message', [
    ({'model.max_position_embeddings': 128},
     'phase2.max_seq_length=512 exceeds model.max_position_embeddings=128'),
    ({'train.num_steps': 3}, 'leaves 3 + 0 steps'),
    ({'phase2.fraction': 1.5}, 'must be in (0, 1)'),
    ({'phase2.global_batch_size': 12}, 'global_batch_size=12 is not divisible'),
])
def test_bad_two_phase_configs_fail_before_phase_one(tmp_path, monkeypatch, change,
                                                     message):
  monkeypatch.setattr(phases.trainer, 'run', lambda c, d: pytest.fail('ran'))
  config = _tiny_two_phase()
  for key, value in change.items():
    group, field = key.split('.')
    config[group][field] = value
  with pytest.raises(ValueError, match=re.escape(message)):
    phases.run(config, str(tmp_path))
