"""Bad input, swept (2/3): truncated or wrong-shaped Hugging Face
checkpoints, broken tokenizer files, prepared shards and TFDS datasets not
there, and config values a run refuses: one clear line each (see
tests/test_bad_input.py)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file
import torch

from bert_jax import errors
from bert_jax import pretrained
from bert_jax.convert import hf
from bert_jax.data.pretrain import prepare
from bert_jax.data import tfds_source
from bert_jax.text import load_tokenizer
from bert_jax.train import trainer
from bert_jax.configs import finetune
from tests.bad_input_table import Case, outcome_table  # noqa: F401 (a fixture)
from tests.bad_input_table import fails as _fails
from tests.bad_input_table import run_case
from tests.bad_input_table import write as _write


# --- Hugging Face checkpoints (bert_jax/convert/). ---

_HF_CONFIG = {'model_type': 'bert', 'vocab_size': 50, 'hidden_size': 8,
              'num_hidden_layers': 1, 'num_attention_heads': 2,
              'intermediate_size': 16, 'max_position_embeddings': 16,
              'type_vocab_size': 2}


def _hf_dir(d, config=None, weights=None):
  src = os.path.join(d, 'hf')
  os.makedirs(src, exist_ok=True)
  _write(src, 'config.json', json.dumps(config or _HF_CONFIG))
  if weights is not None:
    save_file(weights, os.path.join(src, 'model.safetensors'))
  return src


def _hf_truncated_safetensors(d):
  src = _hf_dir(d, weights={'bert.embeddings.word_embeddings.weight':
                            np.zeros((50, 8), np.float32)})
  path = os.path.join(src, 'model.safetensors')
  with open(path, 'rb') as f:
    raw = f.read()
  _write(src, 'model.safetensors', raw[:len(raw) // 2])
  return _fails(lambda: hf.params_from_hf(src), 'hf/model.safetensors:',
                'not a readable safetensors file', 'truncated or damaged')


def _hf_truncated_bin(d):
  src = _hf_dir(d)
  path = os.path.join(src, 'pytorch_model.bin')
  torch.save({'bert.embeddings.word_embeddings.weight': torch.zeros(50, 8)},
             path)
  with open(path, 'rb') as f:
    raw = f.read()
  _write(src, 'pytorch_model.bin', raw[:len(raw) // 2])
  return _fails(lambda: hf.params_from_hf(src), 'hf/pytorch_model.bin:',
                'not a readable PyTorch checkpoint', 'truncated or damaged')


def _hf_config_not_json(d):
  src = _hf_dir(d)
  _write(src, 'config.json', '{"model_type": "bert",\n "hidden_size": 8,,}')
  return _fails(lambda: hf.params_from_hf(src), 'hf/config.json:2:',
                'not valid JSON', 'Hugging Face model config')


def _hf_config_wrong_type(d):
  src = _hf_dir(d, config=dict(_HF_CONFIG, num_attention_heads=3),
                weights={'bert.embeddings.word_embeddings.weight':
                         np.zeros((50, 8), np.float32)})
  return _fails(lambda: hf.params_from_hf(src), 'hf/config.json:',
                'num_heads')


def _hf_wrong_shape(d):
  src = _hf_dir(d, weights={'bert.embeddings.word_embeddings.weight':
                            np.zeros((49, 8), np.float32)})
  return _fails(lambda: hf.params_from_hf(src), 'problem(s) with the tensors',
                'shape mismatch: bert.embeddings.word_embeddings.weight: '
                'expected (50, 8), found (49, 8)',
                'missing: bert.encoder.layer.0', multiline=True)


# --- bert_jax checkpoint folders (init_from, encode; bert_jax/pretrained.py). ---


def _ckpt_dir(d, config_text):
  out = os.path.join(d, 'ckpt')
  os.makedirs(os.path.join(out, pretrained.PARAMS))
  _write(out, pretrained.MODEL_CONFIG, config_text)
  return out


def _ckpt_config_cut(d):
  out = _ckpt_dir(d, '{"hidden_size": 8,\n ')
  return _fails(lambda: pretrained.load_model_config(out),
                'ckpt/model_config.json:2:', 'not valid JSON')


def _ckpt_config_unknown_field(d):
  out = _ckpt_dir(d, '{"hiden_size": 8}')
  return _fails(lambda: pretrained.load_model_config(out),
                'ckpt/model_config.json:', "Unknown model config fields "
                "['hiden_size']")


def _ckpt_params_garbage(d):
  out = _ckpt_dir(d, '{}')
  _write(os.path.join(out, pretrained.PARAMS), '_METADATA', 'not json')
  return _fails(lambda: pretrained.load_params(out), 'ckpt/params:',
                'the params could not be read', 'orbax checkpoint')


# --- Tokenizers (bert_jax/text/), prepared shards (bert_jax/data/pretrain/prepare.py)
# and TFDS datasets (bert_jax/data/tfds_source.py). ---


def _tokenizer_unknown_file(d):
  path = _write(d, 'vocab.json', '{}')
  return _fails(lambda: load_tokenizer(path), 'vocab.json',
                'cannot tell the tokenizer type', 'WordPiece vocab (.txt)')


def _vocab_without_specials(d):
  path = _write(d, 'vocab.txt', 'the\nfilm\n')
  return _fails(lambda: load_tokenizer(path), 'vocab.txt lacks special tokens',
                '[CLS]', '[MASK]')


def _tokenizer_config_not_json(d):
  os.makedirs(os.path.join(d, 'tok'))
  _write(os.path.join(d, 'tok'), 'tokenizer_config.json', '{"kind": ')
  return _fails(lambda: load_tokenizer(os.path.join(d, 'tok')),
                'tokenizer_config.json is not valid JSON')


def _spm_model_garbage(d):
  path = _write(d, 'spiece.model', b'\x00not a model' * 8)
  return _fails(lambda: load_tokenizer(path), 'spiece.model',
                'not a readable SentencePiece model')


def _prepared_meta(d, text):
  os.makedirs(os.path.join(d, 'prep'))
  _write(os.path.join(d, 'prep'), prepare.META_FILE, text)
  return lambda: prepare.read_meta(os.path.join(d, 'prep'), 'train')


def _prepared_meta_not_json(d):
  return _fails(_prepared_meta(d, '{"format":\n'), 'meta.json:2:',
                'not valid JSON', 'bert_jax.data.pretrain.prepare')


def _prepared_meta_wrong_format(d):
  return _fails(_prepared_meta(d, json.dumps({'format': 'tfrecord'})),
                "meta.json has format 'tfrecord'", prepare.FORMAT)


def _tfds_not_prepared(d):
  with pytest.raises(errors.DatasetUnavailableError) as e:
    tfds_source.open_split('glue/sst2', 'train', data_dir=os.path.join(d, 'tfds'))
  msg = str(e.value)
  assert 'Could not open' in msg and 'tfds build glue/sst2' in msg, msg
  return f'error: {msg.splitlines()[0]} (then the command to prepare it)'


# --- Config values (trainer.validate, before anything is read). ---


def _config_value(field, value, *expected):
  def run(_):
    config = finetune.get_config('task=local_classification,runlocal')
    group, name = field.split('.')
    with config.unlocked():
      config[group][name] = value
    return _fails(lambda: trainer.validate(config, num_devices=8), *expected)
  return run


CASES = [
    Case('hf_truncated_safetensors', 'HF model.safetensors cut in half',
         _hf_truncated_safetensors),
    Case('hf_truncated_bin', 'HF pytorch_model.bin cut in half',
         _hf_truncated_bin),
    Case('hf_config_not_json', 'HF config.json with a syntax error on line 2',
         _hf_config_not_json),
    Case('hf_config_bad_value', 'HF config.json: 8 hidden units, 3 heads',
         _hf_config_wrong_type),
    Case('hf_wrong_shape', 'HF weights of the wrong shape, others missing',
         _hf_wrong_shape),
    Case('ckpt_config_cut', 'init_from folder whose model_config.json is cut',
         _ckpt_config_cut),
    Case('ckpt_config_unknown_field', 'model_config.json with a misspelt '
         'field', _ckpt_config_unknown_field),
    Case('ckpt_params_garbage', 'init_from folder whose params/ is not orbax',
         _ckpt_params_garbage),
    Case('tokenizer_unknown_file', 'data.tokenizer pointing at a .json file',
         _tokenizer_unknown_file),
    Case('vocab_without_specials', 'vocab.txt without [CLS], [SEP], [MASK]...',
         _vocab_without_specials),
    Case('tokenizer_config_not_json', 'tokenizer folder whose '
         'tokenizer_config.json is cut', _tokenizer_config_not_json),
    Case('spm_model_garbage', 'SentencePiece .model of random bytes',
         _spm_model_garbage),
    Case('prepared_meta_not_json', 'prepared shards whose meta.json is cut',
         _prepared_meta_not_json),
    Case('prepared_meta_wrong_format', 'prepared shards of another format',
         _prepared_meta_wrong_format),
    Case('tfds_not_prepared', 'TFDS dataset not prepared in data.tfds_data_dir',
         _tfds_not_prepared),
    Case('config_bad_choice', 'config train.nan_policy=sometimes',
         _config_value('train.nan_policy', 'sometimes', 'train.nan_policy',
                       "'stop', 'skip'")),
    Case('config_bad_batch', 'config train.global_batch_size=12 on 8 devices',
         _config_value('train.global_batch_size', 12,
                       'train.global_batch_size=12', 'not divisible')),
]


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_clear_line(case, tmp_path):
  run_case(case, tmp_path)
