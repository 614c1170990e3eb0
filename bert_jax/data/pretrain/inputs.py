"""Everything the pretraining run reads, assembled from the config.

corpus -> held-out split -> tokenizer (given, or trained into the workdir and
reused on restart) -> tokenized documents -> fixed-shape examples. Small
corpora are built here in memory; large ones are prepared offline with
``python -m bert_jax.data.pretrain.prepare`` and read from ``data.prepared_dir``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np
from absl import logging

from bert_jax import storage
from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import objectives
from bert_jax.data.pretrain import packing
from bert_jax.data.pretrain import prepare
from bert_jax.data.pretrain import examples as examples_lib
from bert_jax.errors import UserInputError
from bert_jax.text import base as text_base
from bert_jax.text import load_tokenizer
from bert_jax.text import train_tokenizer as train_lib


@dataclasses.dataclass
class PretrainInputs:
  tokenizer: Any
  train: Any            # dict of np arrays [N, ...] or a grain data source
  eval: dict[str, np.ndarray] | None
  stats: dict[str, float]
  examples_per_row: int = 0  # K of packed rows (data.packing); 0 = unpacked.


def _tokenizer(data: Any, workdir: str, train_docs: list[list[str]],
               tokenizer_path: str = ''):
  if tokenizer_path or data.tokenizer:
    return load_tokenizer(tokenizer_path or data.tokenizer)
  out_dir = os.path.join(workdir, 'tokenizer')
  if storage.exists(os.path.join(out_dir, text_base.CONFIG_FILE)):
    logging.info('Reusing the tokenizer trained earlier in %s', out_dir)
    return load_tokenizer(out_dir)
  t0 = time.perf_counter()
  tok = train_lib.train_tokenizer(data.tokenizer_kind,
                                  (s for d in train_docs for s in d),
                                  data.tokenizer_vocab_size, out_dir,
                                  do_lower_case=data.lowercase)
  logging.info('Trained a %s tokenizer (%d pieces) in %.1fs into %s',
               data.tokenizer_kind, tok.vocab_size, time.perf_counter() - t0,
               out_dir)
  return tok


def _examples(docs, tokenizer, data: Any, seed: int, dupe_factor: int):
  token_docs = examples_lib.documents_to_token_docs(docs, tokenizer)
  examples = examples_lib.create_examples(
      token_docs, max_seq_length=data.max_seq_length, objective=data.objective,
      short_seq_prob=data.short_seq_prob, dupe_factor=dupe_factor, seed=seed,
      cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id, pad_id=tokenizer.pad_id)
  if _packed_k(data):
    examples = packing.pack(examples, _packed_k(data), seed)
  return examples


def _packed_k(data: Any) -> int:
  """Examples per packed row; 0 = one example per row (data.packing=False)."""
  return int(data.max_examples_per_row) if data.get('packing', False) else 0


def build(data: Any, workdir: str, seed: int, tokenizer_path: str = ''
          ) -> PretrainInputs:
  """Builds tokenizer and train/eval examples as ``config.data`` says.

  ``tokenizer_path`` (e.g. the tokenizer of ``init_from``) wins over
  ``data.tokenizer``.
  """
  t0 = time.perf_counter()
  objectives.get(data.objective)  # Fail before any corpus is read.
  if data.prepared_dir:
    if data.get('exclude_sentences', ''):
      raise UserInputError(
          f'data.exclude_sentences={data.exclude_sentences!r} filters a corpus '
          f'read at run time; data.prepared_dir={data.prepared_dir!r} was built '
          'already: drop one of the two.')
    if not (tokenizer_path or data.tokenizer):
      raise UserInputError('data.prepared_dir needs data.tokenizer: the '
                           'tokenizer the shards were prepared with.')
    tok = load_tokenizer(tokenizer_path or data.tokenizer)
    meta = prepare.read_meta(data.prepared_dir, 'train')
    for field in ('max_seq_length', 'objective'):
      if meta[field] != data[field]:
        raise UserInputError(
            f'data.{field}={data[field]!r} but {data.prepared_dir} was prepared '
            f'with {meta[field]!r}.')
    # Packed rows carry one [CLS] position per slot: K is that width.
    k = next((f['shape'][0] for f in meta['features']
              if f['name'] == 'cls_positions'), 0)
    if bool(k) != bool(_packed_k(data)):
      logging.warning('data.packing=%s, but %s was prepared with '
                      'max_examples_per_row=%d: its rows are read as prepared.',
                      data.get('packing', False), data.prepared_dir, k)
    # Train examples stay on disk (grain reads them); eval is small: in memory.
    train = prepare.PreparedSource(data.prepared_dir, 'train')
    ev = (prepare.load_prepared(data.prepared_dir, 'eval')
          if 'eval' in meta['splits'] else None)
    stats = {'train_examples': meta['splits']['train']['num_examples'],
             'train_rows': len(train),
             'eval_examples': 0 if ev is None else _count(ev),
             'padding_fraction': meta['splits']['train']['padding_fraction'],
             'prepare_seconds': time.perf_counter() - t0}
    return PretrainInputs(tok, train, ev, stats, k)
  docs = list(corpora.load_corpus(data.corpus, data.max_documents or None))
  excluded = 0
  if data.get('exclude_sentences', ''):
    # Before the tokenizer and the held-out split: the excluded text (a
    # downstream dev/test set) shapes neither the vocabulary nor any example.
    docs, excluded = corpora.exclude_sentences(
        docs, corpora.read_sentence_list(data.exclude_sentences))
    logging.info('data.exclude_sentences=%s: removed %d corpus sentences.',
                 data.exclude_sentences, excluded)
  train_docs, eval_docs = corpora.split_documents(
      docs, data.eval_fraction, seed, field='data.eval_fraction')
  if not train_docs:
    raise UserInputError(
        f'data.corpus={data.corpus!r} gave no training documents ({len(docs)} '
        f'documents, data.eval_fraction={data.eval_fraction} held out).')
  tok = _tokenizer(data, workdir, train_docs, tokenizer_path)
  train = _examples(train_docs, tok, data, seed, data.dupe_factor)
  ev = _examples(eval_docs, tok, data, seed + 1, 1) if eval_docs else None
  if ev is None:  # eval_fraction=0 (one that holds out nothing is an error).
    logging.info('No held-out documents (data.eval_fraction=%s): no '
                 'evaluation during pretraining.', data.eval_fraction)
  stats = {
      'documents': len(docs), 'eval_documents': len(eval_docs),
      'excluded_sentences': excluded,
      'train_examples': _count(train), 'train_rows': len(train['input_ids']),
      'eval_examples': 0 if ev is None else _count(ev),
      'padding_fraction': examples_lib.padding_fraction(train),
      'prepare_seconds': time.perf_counter() - t0,
  }
  return PretrainInputs(tok, train, ev, stats, _packed_k(data))


def _count(examples: dict[str, np.ndarray]) -> int:
  """Examples (not rows: a packed row holds several)."""
  if 'cls_weight' in examples:
    return int(examples['cls_weight'].sum())
  return len(examples['input_ids'])
