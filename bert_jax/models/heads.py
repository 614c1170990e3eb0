"""Task heads over the encoder, and the full models that pair them.

Each ``Bert*`` model keeps the encoder under the ``bert`` key, so encoder
weights move between pretraining and every fine-tuning task unchanged.
Logits are returned in float32 (losses are computed in float32).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bert_jax.models import dropout
from bert_jax.models import layers
from bert_jax.models.config import ModelConfig
from bert_jax.models.encoder import BertEncoder

Array = jax.Array


def _dense(c: ModelConfig, features: int, names, name: str) -> nn.Dense:
  return nn.Dense(features, use_bias=c.use_bias, dtype=layers.dtype_of(c.dtype),
                  param_dtype=layers.dtype_of(c.param_dtype),
                  kernel_init=layers.kernel_init(c, names),
                  bias_init=layers.zeros_init(names[1:]), name=name)


def gather_positions(x_BLD: Array, positions_BP: Array) -> Array:
  """x[b, positions[b, p]] -> [B, P, D]."""
  return jnp.take_along_axis(x_BLD, positions_BP[..., None], axis=1)


class MlmHead(nn.Module):
  """Masked-LM head: transform (dense, act, norm), then the (tied) decoder.

  Logits are computed only at the gathered masked positions, as the original
  BERT does: the vocabulary projection is the largest matmul of the model.
  """
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BLD: Array, positions_BP: Array,
               word_embeddings: nn.Embed | None) -> Array:
    c = self.config
    x_BPD = gather_positions(x_BLD, positions_BP)
    h = _dense(c, c.hidden_size, ('embed_in', 'embed'), 'transform')(x_BPD)
    h = layers.activation(c.hidden_act)(h)
    h = layers.Norm(c, name='transform_norm')(h)
    if c.tie_word_embeddings:
      logits_BPV = word_embeddings.attend(h.astype(layers.dtype_of(c.dtype)))
    else:
      logits_BPV = nn.Dense(
          c.vocab_size, use_bias=False, dtype=layers.dtype_of(c.dtype),
          param_dtype=layers.dtype_of(c.param_dtype),
          kernel_init=layers.kernel_init(c, ('embed', 'vocab')),
          name='decoder')(h)
    bias = self.param('bias', layers.zeros_init(('vocab',)), (c.vocab_size,),
                      layers.dtype_of(c.param_dtype))
    # dtype change: logits go to float32 for a stable softmax cross-entropy.
    return logits_BPV.astype(jnp.float32) + bias.astype(jnp.float32)


class PooledHead(nn.Module):
  """Dropout + dense on the pooled output (NSP/SOP, classification, regression)."""
  config: ModelConfig
  num_outputs: int
  dropout: bool = True

  @nn.compact
  def __call__(self, pooled_BD: Array, deterministic: bool) -> Array:
    c = self.config
    if self.dropout:
      pooled_BD = dropout.Dropout(rate=c.hidden_dropout)(
          pooled_BD, deterministic=deterministic)
    out = _dense(c, self.num_outputs, ('embed', None), 'dense')(pooled_BD)
    return out.astype(jnp.float32)


class TokenHead(nn.Module):
  """Dropout + dense per token (tagging: num_labels; span QA: 2 = start/end)."""
  config: ModelConfig
  num_outputs: int

  @nn.compact
  def __call__(self, x_BLD: Array, deterministic: bool) -> Array:
    c = self.config
    x_BLD = dropout.Dropout(rate=c.hidden_dropout)(x_BLD, deterministic=deterministic)
    out = _dense(c, self.num_outputs, ('embed', None), 'dense')(x_BLD)
    return out.astype(jnp.float32)


def _encode(module: nn.Module, batch: dict[str, Array], deterministic: bool):
  # cls_positions: packed pretraining rows (bert_jax.data.pretrain.packing).
  return module.bert(batch['input_ids'], batch.get('token_type_ids'),
                     batch.get('attention_mask'), batch.get('position_ids'),
                     deterministic=deterministic,
                     cls_positions_BK=batch.get('cls_positions'))


class BertForPreTraining(nn.Module):
  """Encoder + MLM head (+ NSP/SOP head when ``sentence_head``)."""
  config: ModelConfig
  sentence_head: bool = True

  def setup(self):
    # HF BertForMaskedLM checkpoints have no pooler: without a sentence head
    # there is nothing to pool for.
    self.bert = BertEncoder(self.config, add_pooler=self.sentence_head)
    self.mlm = MlmHead(self.config)
    if self.sentence_head:
      self.nsp = PooledHead(self.config, 2, dropout=False)

  def __call__(self, batch: dict[str, Array], deterministic: bool = True):
    """batch: input_ids, token_type_ids, attention_mask [B,L]; masked_positions
    [B,P]; in packed rows also position_ids [B,L] and cls_positions [B,K], and
    then nsp_logits are [B,K,2] (else [B,2])."""
    enc = _encode(self, batch, deterministic)
    embed = _WordEmbeddingView(self.bert) if self.config.tie_word_embeddings else None
    out = {'mlm_logits': self.mlm(enc['sequence_output'],
                                  batch['masked_positions'], embed)}
    if self.sentence_head:
      out['nsp_logits'] = self.nsp(enc['pooler_output'], deterministic)
    return out


class _WordEmbeddingView:
  """Gives the MLM head ``attend`` over the encoder's word-embedding table."""

  def __init__(self, bert: BertEncoder):
    self.bert = bert

  def attend(self, h: Array) -> Array:
    table = self.bert.variables['params']['embeddings']['word_embeddings'][
        'embedding']
    table = nn.meta.unbox(table)
    # dtype change: the decoder matmul runs in the compute dtype.
    return jnp.einsum('...d,vd->...v', h, table.astype(h.dtype))


class BertForSequenceClassification(nn.Module):
  """Pooled output -> num_labels logits (num_labels=1: regression)."""
  config: ModelConfig
  num_labels: int

  def setup(self):
    self.bert = BertEncoder(self.config)
    self.classifier = PooledHead(self.config, self.num_labels)

  def __call__(self, batch: dict[str, Array], deterministic: bool = True):
    enc = _encode(self, batch, deterministic)
    pooled = enc['pooler_output']
    if self.config.bilstm_layers:
      # With the BiLSTM on, pool its output at [CLS] so the LSTM is used.
      pooled = enc['sequence_output'][:, 0]
    return {'logits': self.classifier(pooled, deterministic)}


class BertForTokenClassification(nn.Module):
  """Per-token logits [B, L, num_labels] (NER tagging)."""
  config: ModelConfig
  num_labels: int

  def setup(self):
    self.bert = BertEncoder(self.config, add_pooler=False)
    self.classifier = TokenHead(self.config, self.num_labels)

  def __call__(self, batch: dict[str, Array], deterministic: bool = True):
    enc = _encode(self, batch, deterministic)
    return {'logits': self.classifier(enc['sequence_output'], deterministic)}


class BertForQuestionAnswering(nn.Module):
  """Span extraction: start and end logits [B, L]."""
  config: ModelConfig

  def setup(self):
    self.bert = BertEncoder(self.config, add_pooler=False)
    self.qa_outputs = TokenHead(self.config, 2)

  def __call__(self, batch: dict[str, Array], deterministic: bool = True):
    enc = _encode(self, batch, deterministic)
    logits_BL2 = self.qa_outputs(enc['sequence_output'], deterministic)
    return {'start_logits': logits_BL2[..., 0], 'end_logits': logits_BL2[..., 1]}


def make_model(kind: str, config: ModelConfig, **kw: Any) -> nn.Module:
  """Builds a model by kind name; unknown kinds name the valid ones."""
  kinds = {
      'encoder': BertEncoder,
      'pretraining': BertForPreTraining,
      'sequence_classification': BertForSequenceClassification,
      'token_classification': BertForTokenClassification,
      'question_answering': BertForQuestionAnswering,
  }
  if kind not in kinds:
    raise ValueError(f'Unknown model kind {kind!r}; choose one of {tuple(kinds)}.')
  return kinds[kind](config.validate(), **kw)
