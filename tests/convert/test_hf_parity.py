"""A real Hugging Face checkpoint (MiniLM-L6), converted: torch's outputs."""

import jax
import numpy as np
import pytest

from bert_jax.convert import hf
from bert_jax.models import BertEncoder
from bert_jax.text import load_tokenizer
from bert_jax import pretrained

torch = pytest.importorskip('torch')

TOL = 1e-4  # fp32, same ids; measured ~3e-6


@pytest.fixture(scope='module')
def ours(minilm_ckpt):
  params, config = pretrained.load_pretrained(minilm_ckpt)
  model = BertEncoder(config)
  fwd = jax.jit(lambda p, ids, types, mask: model.apply(
      {'params': p}, ids, types, mask))
  return lambda batch: jax.tree.map(np.asarray, fwd(
      params['bert'], batch['input_ids'], batch['token_type_ids'],
      batch['attention_mask']))


@pytest.fixture(scope='module')
def tokenizer(minilm_ckpt):
  return load_tokenizer(pretrained.tokenizer_dir(minilm_ckpt))


def reference(hf_model, batch):
  with torch.no_grad():
    out = hf_model(**{k: torch.from_numpy(batch[k]).long() for k in (
        'input_ids', 'token_type_ids', 'attention_mask')})
  return out.last_hidden_state.numpy(), out.pooler_output.numpy()


def max_diffs(ours_out, ref, mask):
  hidden, pooled = ref
  real = mask.astype(bool)
  d_hidden = np.abs(ours_out['last_hidden_state'] - hidden)[real].max()
  d_pooled = np.abs(ours_out['pooler_output'] - pooled).max()
  return float(d_hidden), float(d_pooled)


def test_config_and_tree(minilm_ckpt):
  config = pretrained.load_model_config(minilm_ckpt)
  assert (config.num_layers, config.hidden_size, config.num_heads,
          config.intermediate_size, config.vocab_size) == (6, 384, 12, 1536,
                                                           30522)
  params, _ = pretrained.load_pretrained(minilm_ckpt)
  assert set(params) == {'bert'}  # a BertModel: no heads
  assert params['bert']['layer_0']['attention']['query']['kernel'].shape == (
      384, 12, 32)


@pytest.mark.parametrize('texts', [
    ['Hello world!'],
    ['The quick brown fox jumps over the lazy dog, twice.'],
    [('What does the fox do?', 'The fox jumps over the dog.')],
    # A padded batch of varied lengths (padding must not leak into outputs).
    ['Short.', 'A somewhat longer sentence with more tokens in it.',
     'Medium length text here.'],
], ids=['short', 'long', 'pair', 'padded_batch'])
def test_matches_transformers(ours, hf_minilm, tokenizer, texts):
  batch = tokenizer.encode_batch(texts, pad_to_multiple_of=8)
  if len(texts) > 1:
    assert (batch['attention_mask'] == 0).any()  # really padded
  if isinstance(texts[0], tuple):
    assert batch['token_type_ids'].max() == 1
  d_hidden, d_pooled = max_diffs(ours(batch), reference(hf_minilm, batch),
                                 batch['attention_mask'])
  print(f'max abs diff: last_hidden_state {d_hidden:.2e}, pooler {d_pooled:.2e}')
  assert d_hidden <= TOL and d_pooled <= TOL


def test_scan_layers_same_outputs(minilm_dir, minilm_ckpt, tokenizer, ours,
                                  tmp_path):
  scan_dir = str(tmp_path / 'scan')
  hf.from_hf(minilm_dir, scan_dir, scan_layers=True)
  params, config = pretrained.load_pretrained(scan_dir)
  assert config.scan_layers and 'layers' in params['bert']
  assert params['bert']['layers']['mlp']['wi']['kernel'].shape == (6, 384, 1536)
  batch = tokenizer.encode_batch(['Scanned layers, same numbers.', 'Yes.'])
  out = BertEncoder(config).apply({'params': params['bert']},
                                  batch['input_ids'], batch['token_type_ids'],
                                  batch['attention_mask'])
  want = ours(batch)
  real = batch['attention_mask'].astype(bool)
  np.testing.assert_allclose(np.asarray(out['last_hidden_state'])[real],
                             want['last_hidden_state'][real], atol=1e-5)
  np.testing.assert_allclose(out['pooler_output'], want['pooler_output'],
                             atol=1e-5)
  # Loading the scanned directory unrolled gives the unrolled params exactly.
  unrolled, _ = pretrained.load_pretrained(scan_dir, scan_layers=False)
  flat, _ = pretrained.load_pretrained(minilm_ckpt)
  np.testing.assert_array_equal(
      unrolled['bert']['layer_5']['mlp']['wo']['kernel'],
      flat['bert']['layer_5']['mlp']['wo']['kernel'])
