"""Tests of bert_jax.data.pretrain.prepare (array_record shards and the CLI)."""

import json
import os

import numpy as np
import pytest

from bert_jax.data.pretrain import corpora
from bert_jax.data import loader
from bert_jax.data.pretrain import examples as pretraining
from bert_jax.data.pretrain import prepare


def _prepare(path, tokenizer, out_dir, **kwargs):
  kwargs = {'max_seq_length': 32, 'objective': 'mlm_sop', 'dupe_factor': 2,
            'seed': 4, 'shard_size': 20, **kwargs}
  return prepare.prepare(path, tokenizer, str(out_dir), **kwargs)


def test_round_trip(tiny_corpus_path, fake_tokenizer, tmp_path):
  meta = _prepare(tiny_corpus_path, fake_tokenizer, tmp_path)
  train = meta['splits']['train']
  assert train['num_documents'] == 24 and len(train['files']) > 2
  assert 'eval' not in meta['splits']
  assert json.loads((tmp_path / 'meta.json').read_text()) == meta
  loaded = prepare.load_prepared(str(tmp_path))
  expected = pretraining.create_examples(
      pretraining.documents_to_token_docs(
          corpora.load_corpus(tiny_corpus_path), fake_tokenizer),
      max_seq_length=32, objective='mlm_sop', dupe_factor=2, seed=4,
      cls_id=2, sep_id=3, pad_id=0)
  assert set(loaded) == set(expected)
  for k in expected:
    assert loaded[k].dtype == np.int32
    np.testing.assert_array_equal(loaded[k], expected[k])
  source = prepare.PreparedSource(str(tmp_path))
  assert len(source) == train['num_examples']
  np.testing.assert_array_equal(source[7]['input_ids'],
                                expected['input_ids'][7])
  some = source.take([3, 0, 41])
  np.testing.assert_array_equal(some['nsp_label'],
                                expected['nsp_label'][[3, 0, 41]])
  batch = next(loader.make_loader(source, global_batch_size=4, seed=0))
  assert batch['input_ids'].shape == (4, 32)
  assert batch['nsp_label'].shape == (4,)


def test_eval_split(tiny_corpus_path, fake_tokenizer, tmp_path):
  meta = _prepare(tiny_corpus_path, fake_tokenizer, tmp_path,
                  eval_fraction=0.3)
  splits = meta['splits']
  assert (splits['train']['num_documents'] +
          splits['eval']['num_documents']) == 24
  assert splits['eval']['num_documents'] > 0
  held_out = prepare.load_prepared(str(tmp_path), 'eval')
  assert len(held_out['input_ids']) == splits['eval']['num_examples']


def test_missing_or_existing_output_fails_loudly(tiny_corpus_path,
                                                 fake_tokenizer, tmp_path):
  with pytest.raises(FileNotFoundError, match='meta.json'):
    prepare.load_prepared(str(tmp_path / 'nothing'))
  _prepare(tiny_corpus_path, fake_tokenizer, tmp_path)
  with pytest.raises(ValueError, match=r"no split 'eval'.*\['train'\]"):
    prepare.load_prepared(str(tmp_path), 'eval')
  with pytest.raises(FileExistsError, match='already holds'):
    _prepare(tiny_corpus_path, fake_tokenizer, tmp_path)
  first = json.loads((tmp_path / 'meta.json').read_text())
  os.remove(tmp_path / first['splits']['train']['files'][1])
  with pytest.raises(FileNotFoundError, match='train-00001'):
    prepare.load_prepared(str(tmp_path))


def test_command_line(tiny_corpus_path, real_vocab_path, tmp_path, capsys):
  pytest.importorskip('bert_jax.text')
  out = tmp_path / 'out'
  meta = prepare.main([
      '--corpus', tiny_corpus_path, '--tokenizer', real_vocab_path,
      '--max_seq_length', '64', '--objective', 'mlm_nsp', '--out', str(out),
      '--shard_size', '10'])
  assert 'train:' in capsys.readouterr().out
  examples = prepare.load_prepared(str(out))
  n = meta['splits']['train']['num_examples']
  assert examples['input_ids'].shape == (n, 64)
  assert meta['special_ids']['cls'] == 101  # BERT's uncased vocabulary.
  assert (examples['input_ids'][:, 0] == 101).all()
