"""Hugging Face BERT folders to bert_jax checkpoint directories, and back.

``from_hf`` reads ``config.json`` and ``model.safetensors`` (or a pickled
``pytorch_model.bin``, or sharded versions of either), with or without the
``bert.`` key prefix, with the pretraining heads, a classifier or a QA head,
and writes a bert_jax pretrained directory (``bert_jax/pretrained.py``).
``to_hf`` writes the folder ``transformers`` loads: ``config.json``,
``model.safetensors`` (``BertForPreTraining``-style names) and the tokenizer.

Both check every tensor against the layout the config implies and report all
missing, unexpected and mis-shaped tensors together.
"""

from __future__ import annotations

import json
import os
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import numpy as np
from safetensors.numpy import save_file

from bert_jax.convert import hf_layout as layout
from bert_jax.convert.hf_files import (HF_CONFIG, SAFETENSORS,
                                       CheckpointMismatchError,
                                       read_hf_config, read_hf_weights)
from bert_jax.errors import UserInputError
from bert_jax.models import encoder as encoder_lib
from bert_jax.models.config import ModelConfig
from bert_jax.models.heads import make_model
from bert_jax import pretrained
from bert_jax.text import load_tokenizer

PREFIX = 'bert.'
TIED_DECODER = 'cls.predictions.decoder.weight'
TIED_DECODER_BIAS = 'cls.predictions.decoder.bias'
WORD_EMBEDDINGS = 'embeddings.word_embeddings.weight'


# --------------------------------------------------------------------------
# Reading Hugging Face folders.


def _strip_prefix(weights: dict[str, np.ndarray], src: str
                  ) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
  """Drops the ``bert.`` prefix of task checkpoints.

  Returns:
    (tensors by unprefixed name, unprefixed -> name in the file, the prefix
    the file uses for encoder tensors: 'bert.' or '').
  """
  prefixed = any(k.startswith(PREFIX) for k in weights)
  out, names = {}, {}
  duplicates = []
  for key, value in weights.items():
    short = key[len(PREFIX):] if key.startswith(PREFIX) else key
    if short in out:
      duplicates.append(f'duplicate: {key} and {names[short]} are both present')
    out[short], names[short] = value, key
  if duplicates:
    raise CheckpointMismatchError(src, duplicates)
  for key in layout.IGNORED_KEYS:
    out.pop(key, None)
  return out, names, PREFIX if prefixed else ''


def _head_kind(weights: dict[str, np.ndarray], hf_config: dict[str, Any],
               src: str) -> str:
  has = lambda p: any(k.startswith(p) for k in weights)
  mlm, nsp = has('cls.predictions.'), has('cls.seq_relationship.')
  classifier, qa = has('classifier.'), has('qa_outputs.')
  if (mlm or nsp) + classifier + qa > 1:
    raise UserInputError(f'{src} mixes heads (cls.*, classifier.*, qa_outputs.*); '
                     'a bert_jax checkpoint holds one head family.')
  if mlm and nsp:
    return layout.PRETRAINING
  if mlm:
    return layout.MASKED_LM
  if nsp:
    return layout.NEXT_SENTENCE
  if qa:
    return layout.QUESTION_ANSWERING
  if classifier:
    archs = hf_config.get('architectures') or []
    if 'BertForTokenClassification' in archs:
      return layout.TOKEN_CLS
    if 'BertForSequenceClassification' in archs:
      return layout.SEQUENCE_CLS
    # Hugging Face's token classifier is built without a pooler.
    return layout.SEQUENCE_CLS if has('pooler.') else layout.TOKEN_CLS
  return layout.ENCODER


def _num_labels(weights: dict[str, np.ndarray], hf_config: dict[str, Any]
                ) -> int:
  if hf_config.get('id2label'):
    return len(hf_config['id2label'])
  if hf_config.get('num_labels'):
    return int(hf_config['num_labels'])
  bias = weights.get('classifier.bias')
  return int(bias.shape[0]) if bias is not None else 2


def _is_tied(weights: dict[str, np.ndarray], hf_config: dict[str, Any]) -> bool:
  """Whether the MLM decoder is the word-embedding table (BERT's default)."""
  decoder = weights.get(TIED_DECODER)
  if decoder is None:
    return True  # transformers omits tied copies when it saves
  word = weights.get(WORD_EMBEDDINGS)
  same = (word is not None and word.shape == decoder.shape and
          np.array_equal(word, decoder))
  if not same and hf_config.get('tie_word_embeddings', True):
    logging.warning(
        '%s differs from %s although config.json ties them: converting as '
        'an untied decoder (tie_word_embeddings=False).', TIED_DECODER,
        WORD_EMBEDDINGS)
  return same


def _is_head_key(key: str) -> bool:
  return key.startswith(('cls.', 'classifier.', 'qa_outputs.'))


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
  for key in path[:-1]:
    tree = tree.setdefault(key, {})
  tree[path[-1]] = value


def _leaves(tree: Any) -> dict[tuple[str, ...], Any]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {tuple(str(k.key) for k in path): x for path, x in flat}


def _model_for(config: ModelConfig, kind: str, num_labels: int | None):
  if kind in (layout.PRETRAINING, layout.MASKED_LM):
    return make_model('pretraining', config,
                      sentence_head=kind == layout.PRETRAINING)
  if kind in (layout.SEQUENCE_CLS, layout.TOKEN_CLS):
    return make_model(kind, config, num_labels=num_labels)
  if kind == layout.NEXT_SENTENCE:
    return None  # no bert_jax model has the NSP head alone; nothing to check
  return make_model(kind, config)


def check_against_model(params: dict[str, Any], config: ModelConfig,
                        kind: str, num_labels: int | None) -> None:
  """Cross-checks converted params with the model's own (abstract) init.

  The layout table and the models are written separately; this catches them
  drifting apart (a renamed module) at conversion time instead of at load.
  """
  model = _model_for(config, kind, num_labels)
  if model is None:
    return
  batch = {'input_ids': np.zeros((1, 2), np.int32),
           'masked_positions': np.zeros((1, 1), np.int32)}
  if kind == layout.ENCODER:
    init = lambda: model.init(jax.random.key(0), batch['input_ids'])
  else:
    init = lambda: model.init(jax.random.key(0), batch)
  expected = _leaves(nn.meta.unbox(jax.eval_shape(init)['params']))
  if kind == layout.ENCODER:
    expected = {('bert',) + k: v for k, v in expected.items()}
  found = _leaves(params)
  if 'pooler' not in params['bert']:  # e.g. BertForMaskedLM has none
    expected = {k: v for k, v in expected.items() if k[:2] != ('bert', 'pooler')}
  problems = [f'missing: {"/".join(k)} (expected shape {expected[k].shape})'
              for k in sorted(set(expected) - set(found))]
  problems += [f'unexpected: {"/".join(k)} (shape {found[k].shape})'
               for k in sorted(set(found) - set(expected))]
  problems += [f'shape mismatch: {"/".join(k)}: expected {expected[k].shape}, '
               f'found {found[k].shape}'
               for k in sorted(set(found) & set(expected))
               if tuple(expected[k].shape) != tuple(found[k].shape)]
  if problems:
    raise CheckpointMismatchError('the converted params (a converter bug)',
                                  problems)


def _mlm_bias(params: dict[str, Any], decoder_bias: np.ndarray | None,
              hf_config: dict[str, Any]) -> list[str]:
  """Keeps the MLM bias transformers computes with; returns problems.

  HF BERT has two: ``cls.predictions.bias`` and ``cls.predictions.decoder.bias``.
  With tie_word_embeddings, transformers ties the second to the first; without
  it, the decoder's own bias is the one its forward pass adds.
  """
  bias = params.get('mlm', {}).get('bias')
  if decoder_bias is None or bias is None or np.array_equal(decoder_bias, bias):
    return []
  if decoder_bias.shape != bias.shape:
    return [f'shape mismatch: {TIED_DECODER_BIAS}: expected {bias.shape}, '
            f'found {decoder_bias.shape}']
  if hf_config.get('tie_word_embeddings', True):
    logging.warning('%s differs from cls.predictions.bias; using the latter, '
                    'as transformers ties them.', TIED_DECODER_BIAS)
  else:
    logging.warning('%s differs from cls.predictions.bias; using the former, '
                    'which transformers adds when untied.', TIED_DECODER_BIAS)
    params['mlm']['bias'] = np.ascontiguousarray(decoder_bias)
  return []


def params_from_hf(src: str) -> tuple[dict[str, Any], ModelConfig, str]:
  """Reads a Hugging Face BERT folder: (params, model config, head kind).

  Raises:
    FileNotFoundError: config.json or the weights are missing (names the path).
    UserInputError: the config is not convertible (names the field), or a
      file is not JSON / is cut short (names the file).
    CheckpointMismatchError: lists every missing tensor, unexpected tensor and
      shape mismatch (key, expected shape, found shape).
  """
  hf_config = read_hf_config(src)
  weights, names, prefix = _strip_prefix(read_hf_weights(src), src)
  kind = _head_kind(weights, hf_config, src)
  try:
    config = layout.model_config_from_hf(hf_config,
                                         _is_tied(weights, hf_config))
  except (ValueError, TypeError) as e:
    # Only config.json's values go in: a value of the wrong kind ("hidden_size":
    # "768") or range is the file's fault.
    raise UserInputError(f'{os.path.join(src, HF_CONFIG)}: {e}') from None
  num_labels = (_num_labels(weights, hf_config)
                if kind in (layout.SEQUENCE_CLS, layout.TOKEN_CLS) else None)
  has_pooler = any(k.startswith('pooler.') for k in weights)
  if kind in (layout.TOKEN_CLS, layout.QUESTION_ANSWERING) and has_pooler:
    # Our token-level models have no pooler; drop it rather than carry
    # params the model would not accept.
    logging.warning('%s: dropping pooler.* (a %s model has no pooler).', src,
                    kind)
    for key in [k for k in weights if k.startswith('pooler.')]:
      del weights[key]
    has_pooler = False
  pooler = has_pooler or kind not in layout.NO_POOLER
  tensors = layout.all_tensors(config, kind, pooler, num_labels)

  def file_name(key):
    # Missing encoder tensors are named as this file would have named them.
    if key in names:
      return names[key]
    return key if _is_head_key(key) else prefix + key

  problems, params = [], {}
  for t in tensors:
    x = weights.pop(t.hf_key, None)
    if x is None:
      problems.append(f'missing: {file_name(t.hf_key)} '
                      f'(expected shape {t.hf_shape})')
    elif tuple(x.shape) != t.hf_shape:
      problems.append(f'shape mismatch: {file_name(t.hf_key)}: expected '
                      f'{t.hf_shape}, found {tuple(x.shape)}')
    else:
      _set(params, t.path, np.ascontiguousarray(t.to_ours(x, config)))
  if kind in (layout.PRETRAINING, layout.MASKED_LM):
    if config.tie_word_embeddings:
      weights.pop(TIED_DECODER, None)
    problems += _mlm_bias(params, weights.pop(TIED_DECODER_BIAS, None),
                          hf_config)
  problems += [f'unexpected: {file_name(k)} (shape {tuple(v.shape)})'
               for k, v in sorted(weights.items())]
  if problems:
    raise CheckpointMismatchError(src, problems)
  check_against_model(params, config, kind, num_labels)
  return params, config, kind


def _load_source_tokenizer(src: str):
  if not os.path.isfile(os.path.join(src, 'vocab.txt')):
    logging.warning('%s has no vocab.txt: the checkpoint gets no tokenizer.',
                    src)
    return None
  return load_tokenizer(src)


def from_hf(src: str, dst: str, scan_layers: bool = False
            ) -> tuple[dict[str, Any], ModelConfig]:
  """Converts a Hugging Face BERT folder SRC into a bert_jax directory DST.

  Args:
    src: Folder with config.json, the weights and (optionally) vocab.txt.
    dst: Output pretrained directory (see ``bert_jax.pretrained``).
    scan_layers: Store the layers stacked for ``nn.scan``.

  Returns:
    (params, model config) as written.
  """
  params, config, kind = params_from_hf(src)
  tokenizer = _load_source_tokenizer(src)
  if scan_layers:
    params['bert'] = encoder_lib.stack_layers(params['bert'], config.num_layers)
    params = jax.tree.map(np.asarray, params)
    config = config.replace(scan_layers=True)
  pretrained.save_pretrained(dst, params, config, tokenizer)
  logging.info('Converted %s (%s, %d layers) -> %s', src, kind,
               config.num_layers, dst)
  return params, config


# --------------------------------------------------------------------------
# Writing Hugging Face folders.


def hf_weights_from_params(params: dict[str, Any], config: ModelConfig
                           ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Unrolled bert_jax params -> (HF tensors with ``bert.`` names, config.json).

  Raises:
    ValueError: the config is not expressible in HF BERT (names the field).
    CheckpointMismatchError: params that do not fit the config's layout.
  """
  layout.check_exportable(config)
  kind, num_labels = layout.kind_of_params(params)
  pooler = 'pooler' in params['bert']
  tensors = layout.all_tensors(config, kind, pooler, num_labels)
  found = _leaves(params)
  problems, out = [], {}
  for t in tensors:
    x = found.pop(t.path, None)
    if x is None:
      problems.append(f'missing: {"/".join(t.path)} (for {t.hf_key}, '
                      f'shape {t.hf_shape})')
      continue
    # dtype change: HF BERT checkpoints are float32 (bf16 has no numpy type).
    y = np.ascontiguousarray(t.to_hf(np.asarray(x, np.float32)))
    if tuple(y.shape) != t.hf_shape:
      problems.append(f'shape mismatch: {"/".join(t.path)} (as {t.hf_key}): '
                      f'expected {t.hf_shape}, found {tuple(y.shape)}')
    out[t.hf_key if _is_head_key(t.hf_key) else PREFIX + t.hf_key] = y
  if 'cls.predictions.bias' in out:
    # transformers adds the decoder's bias; it ties it to this one only when
    # the embeddings are tied, so write it out for the untied case too.
    out[TIED_DECODER_BIAS] = out['cls.predictions.bias']
  problems += [f'unexpected: {"/".join(k)} (shape {np.shape(v)})'
               for k, v in sorted(found.items())]
  if not pooler and kind not in layout.NO_POOLER:
    problems.append(f'missing: bert/pooler/dense (a {kind} model has a pooler)')
  if problems:
    raise CheckpointMismatchError('the bert_jax params', problems)
  return out, layout.hf_config_from_model_config(config, kind, num_labels)


def _write_tokenizer(src: str, dst: str, config: ModelConfig) -> None:
  """Writes vocab.txt, tokenizer_config.json, special_tokens_map.json."""
  try:
    tok_dir = pretrained.tokenizer_dir(src)
  except FileNotFoundError as e:
    logging.warning('%s; the Hugging Face folder gets no tokenizer.', e)
    return
  tokenizer = load_tokenizer(tok_dir)
  if getattr(tokenizer, 'kind', '') != 'wordpiece':
    logging.warning('Tokenizer in %s is %r, not WordPiece: Hugging Face '
                    'BertTokenizer cannot load it, so none is written.',
                    tok_dir, getattr(tokenizer, 'kind', type(tokenizer)))
    return
  tokenizer.save(dst)  # vocab.txt + a tokenizer_config.json with HF's keys
  path = os.path.join(dst, 'tokenizer_config.json')
  with open(path) as f:
    tok_config = json.load(f)
  tok_config.pop('kind', None)  # ours, meaningless to transformers
  tok_config['model_max_length'] = config.max_position_embeddings
  with open(path, 'w') as f:
    json.dump(tok_config, f, indent=2, sort_keys=True)
  specials = {k: tok_config.get(k, v) for k, v in (
      ('unk_token', '[UNK]'), ('sep_token', '[SEP]'), ('pad_token', '[PAD]'),
      ('cls_token', '[CLS]'), ('mask_token', '[MASK]'))}
  with open(os.path.join(dst, 'special_tokens_map.json'), 'w') as f:
    json.dump(specials, f, indent=2, sort_keys=True)


def to_hf(src: str, dst: str) -> dict[str, Any]:
  """Exports the bert_jax checkpoint (or workdir) SRC as a HF folder DST.

  Returns:
    The config.json written.
  """
  params, config = pretrained.load_pretrained(src, scan_layers=False)
  params = jax.tree.map(np.asarray, nn.meta.unbox(params))
  weights, hf_config = hf_weights_from_params(params, config)
  os.makedirs(dst, exist_ok=True)
  # transformers refuses safetensors files without format metadata.
  save_file(weights, os.path.join(dst, SAFETENSORS), metadata={'format': 'pt'})
  with open(os.path.join(dst, HF_CONFIG), 'w') as f:
    json.dump(hf_config, f, indent=2, sort_keys=True)
  _write_tokenizer(src, dst, config)
  logging.info('Exported %s (%s) -> %s', src, hf_config['architectures'][0],
               dst)
  return hf_config
