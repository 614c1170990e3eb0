"""Pretraining objective: dynamic MLM masking on device, MLM + NSP/SOP losses.

Shape letters: B batch, L length, P max predictions per sequence, V vocab.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from absl import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bert_jax.data import masking
from bert_jax.models.config import ModelConfig, resolve_auto_dtype
from bert_jax.models.heads import BertForPreTraining
from bert_jax.tasks.base import Task

OBJECTIVES = ('mlm', 'mlm_nsp', 'mlm_sop')


class PretrainingTask(Task):
  """MLM (+ next-sentence or sentence-order prediction)."""

  main_metric = 'mlm_loss'

  def __init__(self, model_config: ModelConfig, data_config: Any,
               special_ids: tuple[int, ...], mask_id: int,
               tokenizer_vocab_size: int | None = None):
    """The task; random MLM replacements are drawn below TOKENIZER_VOCAB_SIZE
    (default: the model's, which may be padded past the tokenizer's)."""
    if data_config.objective not in OBJECTIVES:
      raise ValueError(f'data.objective={data_config.objective!r}; choose one '
                       f'of {OBJECTIVES}.')
    self.config = model_config
    self.data = data_config
    self.sentence_head = data_config.objective != 'mlm'
    self.model = BertForPreTraining(model_config, sentence_head=self.sentence_head)
    self.special_ids = tuple(int(i) for i in special_ids)
    self.mask_id = int(mask_id)
    self.tokenizer_vocab_size = int(tokenizer_vocab_size
                                    or model_config.vocab_size)
    self.loss_keys = ('mlm_loss', 'nsp_loss') if self.sentence_head else ('mlm_loss',)

  def dummy_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    L, P = self.data.max_seq_length, self.data.max_predictions_per_seq
    z = lambda *s: np.zeros(s, np.int32)
    return {'input_ids': z(batch_size, L), 'token_type_ids': z(batch_size, L),
            'attention_mask': np.ones((batch_size, L), np.int32),
            'word_ids': z(batch_size, L), 'nsp_label': z(batch_size),
            'masked_positions': z(batch_size, P), 'masked_labels': z(batch_size, P),
            'masked_weights': np.zeros((batch_size, P), np.float32)}

  def prepare(self, batch, rng, train):
    del train  # Eval also masks: its rng is fixed, so its masks are too.
    m = masking.mask_tokens(
        rng, batch['input_ids'], batch['attention_mask'], batch['word_ids'],
        mask_rate=self.data.mask_rate,
        max_predictions=self.data.max_predictions_per_seq,
        mask_id=self.mask_id, vocab_size=self.tokenizer_vocab_size,
        special_ids=self.special_ids, whole_word=self.data.whole_word_masking)
    out = dict(batch)
    out['input_ids'] = m['masked_ids_BL']
    out['masked_positions'] = m['positions_BP']
    out['masked_labels'] = m['labels_BP']
    out['masked_weights'] = m['weights_BP']
    return out

  def normalizers(self, batch):
    n_mlm = jnp.sum(batch['masked_weights'].astype(jnp.float32))
    norms = {'mlm_loss': n_mlm, 'mlm_accuracy': n_mlm}
    if self.sentence_head:
      n = jnp.asarray(batch['input_ids'].shape[0], jnp.float32)
      norms.update(nsp_loss=n, nsp_accuracy=n)
    return norms

  def sums(self, params, batch, rng, train):
    out = self.model.apply({'params': params}, batch, deterministic=not train,
                           rngs={'dropout': rng} if train else None)
    logits_BPV = out['mlm_logits']  # float32
    labels_BP, w_BP = batch['masked_labels'], batch['masked_weights']
    xent_BP = optax.softmax_cross_entropy_with_integer_labels(logits_BPV, labels_BP)
    correct_BP = (jnp.argmax(logits_BPV, -1) == labels_BP).astype(jnp.float32)
    sums = {'mlm_loss': jnp.sum(xent_BP * w_BP),
            'mlm_accuracy': jnp.sum(correct_BP * w_BP)}
    if self.sentence_head:
      logits_B2 = out['nsp_logits']
      labels_B = batch['nsp_label']
      sums['nsp_loss'] = jnp.sum(
          optax.softmax_cross_entropy_with_integer_labels(logits_B2, labels_B))
      sums['nsp_accuracy'] = jnp.sum(
          (jnp.argmax(logits_B2, -1) == labels_B).astype(jnp.float32))
    return sums


def frequency_baseline(examples: dict[str, np.ndarray],
                       special_ids: tuple[int, ...]) -> float:
  """MLM accuracy of always predicting the most common non-special token.

  Masked positions are drawn uniformly from real non-special tokens, so this
  is the share of the most frequent such token.
  """
  ids = examples['input_ids'][examples['attention_mask'] > 0]
  ids = ids[~np.isin(ids, np.asarray(special_ids))]
  if ids.size == 0:
    return 0.0
  return float(np.bincount(ids).max() / ids.size)


@dataclasses.dataclass
class Setup:
  task: PretrainingTask
  inputs: Any
  model_config: ModelConfig
  init_params: Any | None


def model_config_from(config: Any, vocab_size: int) -> ModelConfig:
  """The ModelConfig of ``config.model``; vocab_size -1 = the tokenizer's."""
  d = resolve_auto_dtype(config.model.to_dict())
  if d['vocab_size'] == -1:
    d['vocab_size'] = vocab_size
  elif d['vocab_size'] < vocab_size:
    raise ValueError(f'model.vocab_size={d["vocab_size"]} is smaller than the '
                     f'tokenizer vocabulary ({vocab_size}).')
  return ModelConfig.from_dict(d)


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def setup(config: Any, workdir: str) -> Setup:
  """Data, tokenizer, model config and task of a pretraining run.

  Process 0 builds first (it may train the tokenizer into the workdir); the
  others wait, then build from the same files, so all agree.
  """
  from bert_jax.data import pretrain_inputs  # pylint: disable=g-import-not-at-top
  from bert_jax.train import pretrained  # pylint: disable=g-import-not-at-top
  tok_path = ''
  if config.init_from and not config.data.tokenizer:
    # Continued pretraining keeps the checkpoint's vocabulary.
    tok_path = pretrained.tokenizer_dir(config.init_from)
  if jax.process_index() == 0:
    inputs = pretrain_inputs.build(config.data, workdir, config.seed, tok_path)
  _sync('pretrain_inputs')
  if jax.process_index() != 0:
    inputs = pretrain_inputs.build(config.data, workdir, config.seed, tok_path)
  tok = inputs.tokenizer
  if config.init_from:
    from bert_jax.tasks import finetune_setup  # pylint: disable=g-import-not-at-top
    model = resolve_auto_dtype(config.model.to_dict())
    model_config = pretrained.load_model_config(config.init_from).replace(
        **{k: model[k] for k in finetune_setup.RUNTIME_FIELDS})
  else:
    model_config = model_config_from(config, tok.vocab_size)
  if inputs.eval is not None:
    inputs.stats['mlm_frequency_baseline'] = frequency_baseline(
        inputs.eval, tuple(tok.special_ids))
  if jax.process_index() == 0:
    pretrained.save_model_config(workdir, model_config)
    tok.save(os.path.join(workdir, pretrained.TOKENIZER))
    logging.info('Pretraining inputs: %s', inputs.stats)
  init_params = None
  if config.init_from:
    init_params = init_params_from(config.init_from, model_config,
                                   PretrainingTask(model_config, config.data,
                                                   tuple(tok.special_ids),
                                                   tok.mask_id))
  task = PretrainingTask(model_config, config.data, tuple(tok.special_ids),
                         tok.mask_id, tokenizer_vocab_size=tok.vocab_size)
  return Setup(task, inputs, model_config, init_params)


def init_params_from(path: str, model_config: ModelConfig, task: Any) -> Any:
  """Params from a checkpoint dir; heads it lacks keep their fresh init."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from bert_jax.train import pretrained  # pylint: disable=g-import-not-at-top
  params, loaded_config = pretrained.load_pretrained(
      path, scan_layers=model_config.scan_layers)
  fresh = nn.meta.unbox(jax.eval_shape(
      task.model.init, jax.random.key(0), task.dummy_batch(1))['params'])
  out = {}
  for k in fresh:
    if k not in params:
      logging.warning('init_from %s has no %r params: they start fresh.', path, k)
      continue
    got = jax.tree.map(lambda x: x.shape, params[k])
    want = jax.tree.map(lambda x: x.shape, fresh[k])
    if k == 'bert':
      got = {n: v for n, v in got.items() if n in want}
      want = {n: v for n, v in want.items() if n in got}
    if got != want:
      raise ValueError(
          f'init_from {path}: its {k!r} params do not fit the model config '
          f'(its config: {loaded_config.to_dict()}).')
    out[k] = params[k]
  return out
