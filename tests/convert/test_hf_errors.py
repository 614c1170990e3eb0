"""Bad inputs fail loudly, naming the key, the path or the field."""

import json
import os

import numpy as np
import pytest

from bert_jax.convert import __main__ as convert_main
from bert_jax.convert import hf
from bert_jax.convert import hf_layout
from bert_jax.models import ModelConfig

from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top


@pytest.fixture
def hf_dir(tiny_checkpoint, tmp_path):
  """A valid tiny HF BertForPreTraining folder to break."""
  ckpt, _, _ = tiny_checkpoint('pretraining')
  out = str(tmp_path / 'hf')
  hf.to_hf(ckpt, out)
  return out


def rewrite_weights(directory, edit):
  path = os.path.join(directory, 'model.safetensors')
  weights = load_file(path)
  edit(weights)
  save_file(weights, path, metadata={'format': 'pt'})


def rewrite_config(directory, **changes):
  path = os.path.join(directory, 'config.json')
  with open(path) as f:
    config = json.load(f)
  config.update(changes)
  with open(path, 'w') as f:
    json.dump(config, f)


def test_all_tensor_problems_reported_together(hf_dir, tmp_path):
  def edit(w):
    del w['bert.encoder.layer.1.attention.self.key.weight']
    w['bert.encoder.layer.0.extra.weight'] = np.zeros((3, 4), np.float32)
    w['bert.encoder.layer.0.intermediate.dense.weight'] = np.zeros(
        (65, 32), np.float32)
  rewrite_weights(hf_dir, edit)
  with pytest.raises(hf.CheckpointMismatchError) as e:
    hf.from_hf(hf_dir, str(tmp_path / 'out'))
  msg = str(e.value)
  assert len(e.value.problems) == 3, msg
  assert ('missing: bert.encoder.layer.1.attention.self.key.weight '
          '(expected shape (32, 32))') in msg
  assert 'unexpected: bert.encoder.layer.0.extra.weight (shape (3, 4))' in msg
  assert ('shape mismatch: bert.encoder.layer.0.intermediate.dense.weight: '
          'expected (64, 32), found (65, 32)') in msg
  assert not os.path.exists(tmp_path / 'out')  # nothing half-written


def test_missing_head_tensor_named(hf_dir, tmp_path):
  rewrite_weights(hf_dir, lambda w: w.pop('cls.seq_relationship.bias'))
  with pytest.raises(hf.CheckpointMismatchError,
                     match=r'missing: cls\.seq_relationship\.bias '
                     r'\(expected shape \(2,\)\)'):
    hf.from_hf(hf_dir, str(tmp_path / 'out'))


def test_no_config_json(hf_dir, tmp_path):
  os.remove(os.path.join(hf_dir, 'config.json'))
  with pytest.raises(FileNotFoundError,
                     match=os.path.join(hf_dir, 'config.json')):
    hf.from_hf(hf_dir, str(tmp_path / 'out'))


def test_no_weights(hf_dir, tmp_path):
  os.remove(os.path.join(hf_dir, 'model.safetensors'))
  with pytest.raises(FileNotFoundError, match='model.safetensors'):
    hf.from_hf(hf_dir, str(tmp_path / 'out'))


@pytest.mark.parametrize('changes,field', [
    (dict(position_embedding_type='relative_key'), 'position_embedding_type'),
    (dict(hidden_act='mish'), 'hidden_act'),
    (dict(model_type='roberta'), 'model_type'),
    (dict(is_decoder=True), 'is_decoder'),
])
def test_unsupported_hf_config(hf_dir, tmp_path, changes, field):
  rewrite_config(hf_dir, **changes)
  with pytest.raises(ValueError, match=field):
    hf.from_hf(hf_dir, str(tmp_path / 'out'))


@pytest.mark.parametrize('field,value', [
    ('norm_placement', 'pre'), ('norm_type', 'rmsnorm'),
    ('position_embedding', 'rope'), ('mlp_type', 'swiglu'),
    ('use_bias', False), ('bilstm_layers', 1),
])
def test_unexportable_config_names_field(field, value):
  config = ModelConfig(**{field: value})
  with pytest.raises(ValueError, match=f'model.{field}='):
    hf_layout.hf_config_from_model_config(config, hf_layout.ENCODER)


def test_unexportable_checkpoint(tiny_checkpoint, tmp_path):
  ckpt, _, _ = tiny_checkpoint('pretraining', norm_placement='pre')
  with pytest.raises(ValueError, match='model.norm_placement'):
    hf.to_hf(ckpt, str(tmp_path / 'hf'))


def test_export_checks_param_shapes(tiny_checkpoint):
  _, params, config = tiny_checkpoint('pretraining')
  params['bert']['layer_0']['mlp']['wo']['bias'] = np.zeros(7, np.float32)
  del params['mlm']['transform']['bias']
  with pytest.raises(hf.CheckpointMismatchError) as e:
    hf.hf_weights_from_params(params, config)
  msg = str(e.value)
  assert ('bert/layer_0/mlp/wo/bias (as encoder.layer.0.output.dense.bias): '
          'expected (32,), found (7,)') in msg
  assert 'missing: mlm/transform/bias' in msg


def test_cli_usage(capsys):
  main = convert_main.main
  with pytest.raises(SystemExit):
    main([])
  assert 'from-hf' in capsys.readouterr().err
