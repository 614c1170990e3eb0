"""Folders written by transformers itself, every BERT class: import agrees."""

import numpy as np
import pytest

from bert_jax.convert import hf
from bert_jax.models import make_model
from bert_jax import pretrained

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

TOL = 1e-4
CONFIG = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2,
              num_attention_heads=4, intermediate_size=48,
              max_position_embeddings=32)


def saved_hf_model(cls_name, directory, **config_kw):
  """A random transformers model saved with save_pretrained; returns it."""
  torch.manual_seed(0)
  config = transformers.BertConfig(**{**CONFIG, **config_kw})
  model = getattr(transformers, cls_name)(config).eval()
  with torch.no_grad():
    # Default init has zero biases and unit norms, which would hide a
    # swapped or dropped bias; tied tensors stay tied (same storage).
    for p in model.parameters():
      p.normal_(0.0, 0.3)
  model.save_pretrained(directory)
  return model


BATCH = {
    'input_ids': np.array([[2, 7, 9, 11, 3, 5, 6, 3],
                           [2, 30, 31, 3, 0, 0, 0, 0]], np.int32),
    'token_type_ids': np.array([[0, 0, 0, 0, 0, 1, 1, 1],
                                [0, 0, 0, 0, 0, 0, 0, 0]], np.int32),
    'attention_mask': np.array([[1] * 8, [1] * 4 + [0] * 4], np.int32),
    'masked_positions': np.array([[1, 6], [2, 1]], np.int32),
}
REAL = BATCH['attention_mask'].astype(bool)


def torch_out(model):
  with torch.no_grad():
    return model(**{k: torch.from_numpy(BATCH[k]).long() for k in (
        'input_ids', 'token_type_ids', 'attention_mask')})


@pytest.mark.parametrize('cls_name,config_kw', [
    ('BertModel', {}),
    ('BertForPreTraining', {}),
    ('BertForPreTraining', {'tie_word_embeddings': False,
                            'hidden_act': 'gelu_new'}),
    ('BertForMaskedLM', {}),
    ('BertForSequenceClassification', {'num_labels': 3}),
    ('BertForTokenClassification', {'num_labels': 4}),
    ('BertForQuestionAnswering', {}),
])
def test_transformers_saved_folder(tmp_path, cls_name, config_kw):
  src, dst = str(tmp_path / 'hf'), str(tmp_path / 'ours')
  ref = torch_out(saved_hf_model(cls_name, src, **config_kw))
  params, config = hf.from_hf(src, dst)
  if cls_name == 'BertModel':
    out = make_model('encoder', config).apply(
        {'params': params['bert']}, BATCH['input_ids'],
        BATCH['token_type_ids'], BATCH['attention_mask'])
    np.testing.assert_allclose(np.asarray(out['last_hidden_state'])[REAL],
                               ref.last_hidden_state.numpy()[REAL], atol=TOL)
    np.testing.assert_allclose(out['pooler_output'], ref.pooler_output.numpy(),
                               atol=TOL)
  elif cls_name in ('BertForPreTraining', 'BertForMaskedLM'):
    nsp = cls_name == 'BertForPreTraining'
    assert config.tie_word_embeddings == config_kw.get('tie_word_embeddings',
                                                       True)
    if not nsp:
      # HF's masked-LM model has no pooler; ours always builds one (see the
      # converter's notes), so give it an unused one to run.
      assert 'pooler' not in params['bert']
      params['bert']['pooler'] = {'dense': {
          'kernel': np.zeros((32, 32), np.float32),
          'bias': np.zeros(32, np.float32)}}
    out = make_model('pretraining', config, sentence_head=nsp).apply(
        {'params': params}, BATCH)
    logits = ref.prediction_logits if nsp else ref.logits
    want = np.take_along_axis(logits.numpy(),
                              BATCH['masked_positions'][..., None], axis=1)
    np.testing.assert_allclose(out['mlm_logits'], want, atol=TOL)
    if nsp:
      np.testing.assert_allclose(out['nsp_logits'],
                                 ref.seq_relationship_logits.numpy(), atol=TOL)
  else:
    kind = {'BertForSequenceClassification': 'sequence_classification',
            'BertForTokenClassification': 'token_classification',
            'BertForQuestionAnswering': 'question_answering'}[cls_name]
    kw = {k: v for k, v in config_kw.items() if k == 'num_labels'}
    out = make_model(kind, config, **kw).apply({'params': params}, BATCH)
    if kind == 'question_answering':
      np.testing.assert_allclose(np.asarray(out['start_logits'])[REAL],
                                 ref.start_logits.numpy()[REAL], atol=TOL)
    elif kind == 'token_classification':
      np.testing.assert_allclose(np.asarray(out['logits'])[REAL],
                                 ref.logits.numpy()[REAL], atol=TOL)
    else:
      np.testing.assert_allclose(out['logits'], ref.logits.numpy(), atol=TOL)
  # What was written loads back as what was converted.
  loaded, _ = pretrained.load_pretrained(dst)
  assert sorted(loaded) == sorted(params)
