"""The table of pretraining objectives (bert_jax.data.pretrain.objectives)."""

import dataclasses

import pytest

from bert_jax.data.pretrain import objectives


def test_table():
  assert objectives.NAMES == ('mlm', 'mlm_nsp', 'mlm_sop')
  for name, obj in objectives.OBJECTIVES.items():
    assert obj.name == name and objectives.get(name) is obj
    assert obj.sentence_head in ('none', 'nsp', 'sop')
    # A sentence-level label only makes sense between two segments.
    assert obj.pairs == (obj.sentence_head != 'none')
    assert obj.description and '\n' not in obj.description
  with pytest.raises(dataclasses.FrozenInstanceError):
    objectives.get('mlm').pairs = True


@pytest.mark.parametrize('bad', ['nsp', 'MLM', '', None, ['mlm']])
def test_unknown_names_fail_naming_the_field_and_choices(bad):
  with pytest.raises(ValueError) as e:
    objectives.get(bad)
  message = str(e.value)
  assert message.startswith(f'data.objective={bad!r} ')
  assert "('mlm', 'mlm_nsp', 'mlm_sop')" in message
