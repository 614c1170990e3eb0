"""Export to Hugging Face: transformers loads and agrees; round trips exact."""

import json
import os

import jax
import numpy as np
import pytest

from bert_jax.convert import hf
from bert_jax.convert.__main__ import main as convert_main
from bert_jax.models import make_model
from bert_jax.text import load_tokenizer
from bert_jax import pretrained

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top

TOL = 1e-4


def assert_trees_equal(a, b):
  flat_a = jax.tree_util.tree_flatten_with_path(a)[0]
  flat_b = dict(jax.tree_util.tree_flatten_with_path(b)[0])
  assert sorted(map(jax.tree_util.keystr, (p for p, _ in flat_a))) == sorted(
      map(jax.tree_util.keystr, flat_b)), 'different param trees'
  for path, x in flat_a:
    np.testing.assert_array_equal(np.asarray(x), np.asarray(flat_b[path]),
                                  err_msg=jax.tree_util.keystr(path))


def load_hf(cls_name, directory):
  """A transformers model, asserting nothing was missing or mis-shaped.

  Head tensors are unexpected to the bare ``BertModel`` and only to it.
  """
  cls = getattr(transformers, cls_name)
  model, info = cls.from_pretrained(directory, attn_implementation='eager',
                                    output_loading_info=True)
  assert not info['missing_keys'], info
  if cls_name != 'BertModel':
    assert not info['unexpected_keys'], info
  assert not info['mismatched_keys'], info
  return model.eval()


def tiny_batch(seed=0, batch=3, length=10, vocab=23):
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, vocab, (batch, length)).astype(np.int32)
  mask = np.ones((batch, length), np.int32)
  mask[1, 6:] = 0  # one padded row
  ids[:, 0] = 2  # [CLS]
  types = np.zeros_like(ids)
  types[:, 5:] = 1
  return {'input_ids': ids, 'token_type_ids': types, 'attention_mask': mask,
          'masked_positions': np.array([[1, 3], [2, 5], [4, 9]], np.int32)}


def torch_inputs(batch):
  return {k: torch.from_numpy(batch[k]).long()
          for k in ('input_ids', 'token_type_ids', 'attention_mask')}


def test_minilm_round_trip_exact(minilm_ckpt, tmp_path):
  hf_dir, back = str(tmp_path / 'hf'), str(tmp_path / 'back')
  assert convert_main(['to-hf', minilm_ckpt, hf_dir]) == 0
  assert convert_main(['from-hf', hf_dir, back]) == 0
  before, config = pretrained.load_pretrained(minilm_ckpt)
  after, config_back = pretrained.load_pretrained(back)
  assert config_back == config
  assert_trees_equal(before, after)
  # The encoder loads with no missing keys; the tokenizer loads and agrees.
  load_hf('BertModel', hf_dir)
  assert set(load_file(os.path.join(hf_dir, 'model.safetensors'))) >= {
      'bert.embeddings.word_embeddings.weight', 'bert.pooler.dense.weight'}
  hf_tok = transformers.BertTokenizer.from_pretrained(hf_dir)
  ours = load_tokenizer(pretrained.tokenizer_dir(back))
  text = 'Héllo, Wörld! Tokenizers agree?'
  assert hf_tok(text)['input_ids'] == ours.encode(text).input_ids


@pytest.mark.parametrize('overrides', [
    dict(),
    dict(hidden_act='relu', tie_word_embeddings=False, layer_norm_eps=1e-6),
], ids=['tied_gelu', 'untied_relu'])
def test_tiny_pretraining_matches_transformers(tiny_checkpoint, tmp_path,
                                               overrides):
  ckpt, params, config = tiny_checkpoint('pretraining', **overrides)
  hf_dir = str(tmp_path / 'hf')
  hf_config = hf.to_hf(ckpt, hf_dir)
  assert hf_config['architectures'] == ['BertForPreTraining']
  batch = tiny_batch(vocab=config.vocab_size)
  ours = make_model('pretraining', config).apply({'params': params}, batch)
  enc = make_model('encoder', config).apply(
      {'params': params['bert']}, batch['input_ids'], batch['token_type_ids'],
      batch['attention_mask'])

  with torch.no_grad():
    ref = load_hf('BertModel', hf_dir)(**torch_inputs(batch))
    pre = load_hf('BertForPreTraining', hf_dir)(**torch_inputs(batch))
  real = batch['attention_mask'].astype(bool)
  np.testing.assert_allclose(np.asarray(enc['last_hidden_state'])[real],
                             ref.last_hidden_state.numpy()[real], atol=TOL)
  np.testing.assert_allclose(enc['pooler_output'], ref.pooler_output.numpy(),
                             atol=TOL)
  logits = np.take_along_axis(pre.prediction_logits.numpy(),
                              batch['masked_positions'][..., None], axis=1)
  np.testing.assert_allclose(ours['mlm_logits'], logits, atol=TOL)
  np.testing.assert_allclose(ours['nsp_logits'],
                             pre.seq_relationship_logits.numpy(), atol=TOL)

  back_dir = str(tmp_path / 'back')
  back, config_back = hf.from_hf(hf_dir, back_dir)
  assert config_back == config
  assert_trees_equal(params, pretrained.load_pretrained(back_dir)[0])


@pytest.mark.parametrize('kind,hf_class,model_kw', [
    ('sequence_classification', 'BertForSequenceClassification',
     {'num_labels': 3}),
    ('token_classification', 'BertForTokenClassification', {'num_labels': 5}),
    ('question_answering', 'BertForQuestionAnswering', {}),
])
def test_tiny_task_heads_round_trip(tiny_checkpoint, tmp_path, kind, hf_class,
                                    model_kw):
  ckpt, params, config = tiny_checkpoint(kind, model_kw=model_kw)
  hf_dir = str(tmp_path / 'hf')
  assert hf.to_hf(ckpt, hf_dir)['architectures'] == [hf_class]
  batch = tiny_batch(vocab=config.vocab_size)
  ours = make_model(kind, config, **model_kw).apply({'params': params}, batch)
  with torch.no_grad():
    ref = load_hf(hf_class, hf_dir)(**torch_inputs(batch))
  # Per-token outputs are compared at real tokens only: at padding they are
  # not defined (the two attend differently from padded queries).
  real = batch['attention_mask'].astype(bool)
  if kind == 'question_answering':
    for name in ('start_logits', 'end_logits'):
      np.testing.assert_allclose(np.asarray(ours[name])[real],
                                 getattr(ref, name).numpy()[real], atol=TOL)
  elif kind == 'token_classification':
    np.testing.assert_allclose(np.asarray(ours['logits'])[real],
                               ref.logits.numpy()[real], atol=TOL)
  else:
    np.testing.assert_allclose(ours['logits'], ref.logits.numpy(), atol=TOL)
  back_dir = str(tmp_path / 'back')
  hf.from_hf(hf_dir, back_dir)
  assert_trees_equal(params, pretrained.load_pretrained(back_dir)[0])


def test_pytorch_bin_without_prefix(tiny_checkpoint, tmp_path):
  ckpt, params, config = tiny_checkpoint('pretraining')
  hf_dir = str(tmp_path / 'hf')
  hf.to_hf(ckpt, hf_dir)
  state = {k.removeprefix('bert.'): torch.from_numpy(v)
           for k, v in load_file(os.path.join(hf_dir,
                                              'model.safetensors')).items()}
  assert not any(k.startswith('bert.') for k in state)
  os.remove(os.path.join(hf_dir, 'model.safetensors'))
  torch.save(state, os.path.join(hf_dir, 'pytorch_model.bin'))
  back_dir = str(tmp_path / 'back')
  _, config_back = hf.from_hf(hf_dir, back_dir)
  assert config_back == config
  assert_trees_equal(params, pretrained.load_pretrained(back_dir)[0])


def test_untied_decoder_detected_from_values(tiny_checkpoint, tmp_path):
  """A decoder that differs from the word embeddings converts as untied."""
  ckpt, params, config = tiny_checkpoint('pretraining')
  hf_dir = str(tmp_path / 'hf')
  hf.to_hf(ckpt, hf_dir)
  path = os.path.join(hf_dir, 'model.safetensors')
  weights = load_file(path)
  word = weights['bert.embeddings.word_embeddings.weight']
  weights['cls.predictions.decoder.weight'] = word.copy()
  save_file(weights, path, metadata={'format': 'pt'})
  _, tied, _ = hf.params_from_hf(hf_dir)
  assert tied.tie_word_embeddings  # equal copy: still tied

  weights['cls.predictions.decoder.weight'] = word + 1.0
  save_file(weights, path, metadata={'format': 'pt'})
  got, untied, kind = hf.params_from_hf(hf_dir)
  assert kind == 'pretraining' and not untied.tie_word_embeddings
  np.testing.assert_array_equal(got['mlm']['decoder']['kernel'], (word + 1.0).T)


def test_config_json_fields(tiny_checkpoint, tmp_path):
  ckpt, _, config = tiny_checkpoint('pretraining', hidden_act='gelu_new')
  hf_dir = str(tmp_path / 'hf')
  hf.to_hf(ckpt, hf_dir)
  with open(os.path.join(hf_dir, 'config.json')) as f:
    written = json.load(f)
  assert written['hidden_act'] == 'gelu_new'
  assert written['num_hidden_layers'] == config.num_layers
  assert written['tie_word_embeddings'] is True
  cfg = transformers.BertConfig.from_pretrained(hf_dir)
  assert cfg.intermediate_size == config.intermediate_size


def test_scanned_checkpoint_exports(tiny_checkpoint, tmp_path):
  ckpt, params, config = tiny_checkpoint('pretraining', scan_layers=True)
  assert 'layers' in params['bert']
  hf_dir, back_dir = str(tmp_path / 'hf'), str(tmp_path / 'back')
  hf.to_hf(ckpt, hf_dir)
  load_hf('BertForPreTraining', hf_dir)
  assert convert_main(['from-hf', hf_dir, back_dir, '--scan_layers']) == 0
  back, config_back = pretrained.load_pretrained(back_dir)
  assert config_back == config
  assert_trees_equal(params, back)
