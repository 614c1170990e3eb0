"""Pretraining objective: dynamic MLM masking on device, MLM + NSP/SOP losses.

Shape letters: B batch, L length, P max predictions per sequence, V vocab.
"""

from __future__ import annotations

from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.data.pretrain import masking
from bert_jax.data.pretrain import objectives
from bert_jax.data.pretrain import inputs as pretrain_inputs
from bert_jax.models.config import ModelConfig
from bert_jax.models.heads import BertForPreTraining
from bert_jax.tasks import losses
from bert_jax.tasks.base import Task


def masking_cap(data: Any) -> str:
  """A warning when data.max_predictions_per_seq caps data.mask_rate on a full
  row ('' when it does not): masking.mask_tokens masks min(P, rate x tokens)
  per row, so a 30% rate with BERT's 20 at length 128 silently masks 15.6%
  (issue 24: the modern recipe at another length than its config's)."""
  L, P = int(data.max_seq_length), int(data.max_predictions_per_seq)
  rate = float(getattr(data, 'mask_rate', 0.15))
  want = max(1, round(L * rate))
  if P >= want:
    return ''
  return (f'data.max_predictions_per_seq={P} caps data.mask_rate={rate:g}: a full '
          f'row of {L} tokens gets {P} predictions ({P / L:.1%}), not {want}. '
          f'Set data.max_predictions_per_seq >= {want} to mask at the rate asked.')


class PretrainingTask(Task):
  """MLM (+ next-sentence or sentence-order prediction), as config.data says."""

  main_metric = 'mlm_loss'

  def __init__(self, name: str, data_config: Any, tokenizer: Any,
               model_config: ModelConfig, inputs: Any = None):
    """Args (the order every task takes; see ``tasks.base``):

    Args:
      name: 'pretraining'.
      data_config: ``config.data`` (objective, max_seq_length, masking).
      tokenizer: The tokenizer (its special ids, [MASK] id and vocabulary).
      model_config: The model's config.
      inputs: ``bert_jax.data.pretrain.inputs.PretrainInputs`` (train and
        held-out examples); None for a task used only to trace the model.
    """
    self.name = name
    self.objective = objectives.get(data_config.objective)
    self.data = data_config
    self.config = model_config
    self.sentence_head = self.objective.sentence_head != 'none'
    self.model = BertForPreTraining(model_config, sentence_head=self.sentence_head)
    self.special_ids = tuple(int(i) for i in tokenizer.special_ids)
    self.mask_id = int(tokenizer.mask_id)
    # Random replacements come from the tokenizer's ids, not the model's
    # vocabulary (which may be padded past it).
    self.tokenizer_vocab_size = int(tokenizer.vocab_size)
    self.inputs = inputs
    # Examples per row: K of packed rows (bert_jax.data.pretrain.packing), 0 = one.
    self.examples_per_row = int(getattr(inputs, 'examples_per_row', 0) or 0)
    self.loss_keys = ('mlm_loss', 'nsp_loss') if self.sentence_head else ('mlm_loss',)
    cap = masking_cap(data_config)
    if cap:
      logging.warning(cap)

  def feature_spec(self):
    L, P = self.data.max_seq_length, self.data.max_predictions_per_seq
    spec = {**{k: ((L,), np.int32) for k in (
        'input_ids', 'token_type_ids', 'attention_mask', 'word_ids')},
            'masked_positions': ((P,), np.int32),
            'masked_labels': ((P,), np.int32),
            'masked_weights': ((P,), np.float32)}
    k = self.examples_per_row
    if not k:
      return {**spec, 'nsp_label': ((), np.int32)}
    return {**spec, 'position_ids': ((L,), np.int32),
            'nsp_label': ((k,), np.int32), 'cls_positions': ((k,), np.int32),
            'cls_weight': ((k,), np.int32)}

  def train_features(self):
    if self.inputs is None:
      raise ValueError('This PretrainingTask was built without inputs.')
    return self.inputs.train

  def eval_features(self):
    ev = None if self.inputs is None else self.inputs.eval
    return {} if ev is None else {'eval': ev}

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
      n = jnp.sum(_sentence_weights(batch))
      norms.update(nsp_loss=n, nsp_accuracy=n)
    return norms

  def sums(self, params, batch, rng, train):
    out = self.apply(params, batch, rng, train)
    mlm, mlm_hits = losses.xent_and_accuracy(
        out['mlm_logits'], batch['masked_labels'], batch['masked_weights'])
    sums = {'mlm_loss': mlm, 'mlm_accuracy': mlm_hits}
    if self.sentence_head:
      nsp, nsp_hits = losses.xent_and_accuracy(
          out['nsp_logits'], batch['nsp_label'], _sentence_weights(batch))
      sums.update(nsp_loss=nsp, nsp_accuracy=nsp_hits)
    return sums

  def metadata(self):
    return {'task': self.name, 'objective': self.objective.name}


def _sentence_weights(batch) -> jax.Array:
  """Weight of each NSP/SOP label: [B, K] in packed rows (1 = an example),
  else [B], 0 for evaluation padding rows (no attended token)."""
  if 'cls_weight' in batch:
    return batch['cls_weight'].astype(jnp.float32)
  return (jnp.sum(batch['attention_mask'], -1) > 0).astype(jnp.float32)


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


def load_inputs(config: Any, workdir: str, tokenizer_path: str):
  """(tokenizer, inputs): the corpus, split, tokenizer (given, or trained on
  the training documents) and examples of a pretraining run."""
  inputs = pretrain_inputs.build(config.data, workdir, config.seed,
                                 tokenizer_path)
  if inputs.eval is not None:
    inputs.stats['mlm_frequency_baseline'] = frequency_baseline(
        inputs.eval, tuple(inputs.tokenizer.special_ids))
  return inputs.tokenizer, inputs


def make(name: str, config: Any, tokenizer: Any, model_config: ModelConfig,
         inputs: Any = None) -> PretrainingTask:
  """The builder named in ``bert_jax.tasks.registry``."""
  return PretrainingTask(name, config.data, tokenizer, model_config, inputs)
