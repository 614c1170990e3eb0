"""The BERT encoder: embeddings -> Transformer layers -> (BiLSTM) -> pooler.

``BertEncoder`` returns ``sequence_output`` [B, L, D'] (D' = 2 * bilstm_hidden
when the BiLSTM is on, else hidden) and ``pooled_output`` [B, D].
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from bert_jax.models import dropout
from bert_jax.models import layers
from bert_jax.models.config import ModelConfig

Array = jax.Array

# Each saves a different set of activations for the backward pass.
REMAT_POLICIES = {
    'full': jax.checkpoint_policies.nothing_saveable,  # only layer inputs
    'dots': jax.checkpoint_policies.checkpoint_dots,   # every matmul output
    # Matmuls without batch dims: the weight matmuls, not attention scores.
    'dots_with_no_batch_dims':
        jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


class Embeddings(nn.Module):
  """Word + position + token-type embeddings, then norm and dropout."""
  config: ModelConfig

  @nn.compact
  def __call__(self, input_ids_BL: Array, token_type_ids_BL: Array,
               positions_BL: Array, deterministic: bool) -> Array:
    c = self.config
    pdtype = layers.dtype_of(c.param_dtype)
    emb = lambda n, names, name: nn.Embed(
        n, c.hidden_size, dtype=layers.dtype_of(c.dtype), param_dtype=pdtype,
        embedding_init=layers.kernel_init(c, names), name=name)
    x_BLD = emb(c.vocab_size, ('vocab', 'embed'), 'word_embeddings')(input_ids_BL)
    if c.position_embedding == 'learned':
      x_BLD = x_BLD + emb(c.max_position_embeddings, (None, 'embed'),
                          'position_embeddings')(positions_BL)
    elif c.position_embedding == 'sinusoidal':
      table = jnp.asarray(layers.sinusoidal_table(c.max_position_embeddings,
                                                  c.hidden_size))
      # sin/cos of amplitude 1 beside word rows of std initializer_range would
      # drown the token after the LayerNorm. A learned scalar gain (Cramming's
      # "scaled sinusoidal") starts the table at the learned table's scale: RMS
      # initializer_range (a sin/cos column has RMS 1/sqrt(2)).
      scale = self.param('position_scale', nn.with_logical_partitioning(
          nn.initializers.constant(c.initializer_range * math.sqrt(2.0)), ()),
          (), pdtype)
      x_BLD = x_BLD + (scale * table[positions_BL]).astype(x_BLD.dtype)
    if c.type_vocab_size > 0:
      x_BLD = x_BLD + emb(c.type_vocab_size, (None, 'embed'),
                          'token_type_embeddings')(token_type_ids_BL)
    x_BLD = layers.Norm(c, name='LayerNorm')(x_BLD)
    x_BLD = dropout.Dropout(rate=c.hidden_dropout)(x_BLD, deterministic=deterministic)
    return layers.constrain(x_BLD, ('batch', 'length', 'embed'))


class BiLSTM(nn.Module):
  """Stacked bidirectional LSTM over the encoder's outputs (padding-aware)."""
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BLD: Array, attention_mask_BL: Array) -> Array:
    c = self.config
    lengths_B = jnp.sum(attention_mask_BL > 0, axis=-1)
    # LSTM recurrences run in float32: bf16 state drifts over long sequences.
    x = x_BLD.astype(jnp.float32)
    for i in range(c.bilstm_layers):
      fwd = nn.RNN(nn.OptimizedLSTMCell(c.bilstm_hidden), name=f'fwd_{i}')
      bwd = nn.RNN(nn.OptimizedLSTMCell(c.bilstm_hidden), reverse=True,
                   keep_order=True, name=f'bwd_{i}')
      x = nn.Bidirectional(fwd, bwd, name=f'bilstm_{i}')(
          x, seq_lengths=lengths_B)
    return x.astype(x_BLD.dtype)


class Pooler(nn.Module):
  """Dense + tanh on the [CLS] token: the first one, or, in packed rows, the
  [CLS] of each example (``positions_BK`` -> [B, K, D])."""
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BLD: Array, positions_BK: Array | None = None) -> Array:
    c = self.config
    if positions_BK is None:
      x_BD = x_BLD[:, 0]
    else:
      x_BD = jnp.take_along_axis(x_BLD, positions_BK[..., None], axis=1)
    x_BD = nn.Dense(c.hidden_size, use_bias=c.use_bias,
                    dtype=layers.dtype_of(c.dtype),
                    param_dtype=layers.dtype_of(c.param_dtype),
                    kernel_init=layers.kernel_init(c, ('embed', 'embed_out')),
                    bias_init=layers.zeros_init(('embed_out',)),
                    name='dense')(x_BD)
    return jnp.tanh(x_BD)


def _layer_class(c: ModelConfig):
  cls = layers.TransformerLayer
  if c.remat_policy != 'none':
    # deterministic (the last argument) is a Python bool: static for remat.
    cls = nn.remat(cls, policy=REMAT_POLICIES[c.remat_policy],
                   prevent_cse=not c.scan_layers, static_argnums=(4,))
  return cls


class BertEncoder(nn.Module):
  """BERT encoder (Hugging Face ``BertModel`` equivalent)."""
  config: ModelConfig
  add_pooler: bool = True

  @nn.compact
  def __call__(self, input_ids_BL: Array, token_type_ids_BL: Array | None = None,
               attention_mask_BL: Array | None = None,
               position_ids_BL: Array | None = None,
               deterministic: bool = True,
               cls_positions_BK: Array | None = None) -> dict[str, Any]:
    c = self.config
    if token_type_ids_BL is None:
      token_type_ids_BL = jnp.zeros_like(input_ids_BL)
    if attention_mask_BL is None:
      attention_mask_BL = jnp.ones_like(input_ids_BL)
    if position_ids_BL is None:
      position_ids_BL = jnp.broadcast_to(
          jnp.arange(input_ids_BL.shape[1], dtype=jnp.int32), input_ids_BL.shape)
    x_BLD = Embeddings(c, name='embeddings')(
        input_ids_BL, token_type_ids_BL, position_ids_BL, deterministic)
    mask_B1LL = layers.attention_mask_4d(attention_mask_BL)
    layer_cls = _layer_class(c)
    if c.scan_layers:
      stack = nn.scan(
          layer_cls, variable_axes={'params': 0}, split_rngs={
              'params': True, 'dropout': True},
          in_axes=(nn.broadcast, nn.broadcast, nn.broadcast),
          length=c.num_layers,
          metadata_params={nn.PARTITION_NAME: 'layers'})(c, name='layers')
      x_BLD, _ = stack(x_BLD, mask_B1LL, position_ids_BL, deterministic)
    else:
      for i in range(c.num_layers):
        x_BLD, _ = layer_cls(c, name=f'layer_{i}')(
            x_BLD, mask_B1LL, position_ids_BL, deterministic)
    if c.norm_placement == 'pre':
      x_BLD = layers.Norm(c, name='final_norm')(x_BLD)
    out = {'last_hidden_state': x_BLD}
    if self.add_pooler:
      out['pooler_output'] = Pooler(c, name='pooler')(x_BLD, cls_positions_BK)
    if c.bilstm_layers:
      out['sequence_output'] = BiLSTM(c, name='bilstm')(x_BLD, attention_mask_BL)
    else:
      out['sequence_output'] = x_BLD
    return out


def stack_layers(params: dict[str, Any], num_layers: int) -> dict[str, Any]:
  """Unrolled encoder params (layer_0..layer_{n-1}) -> scanned ('layers')."""
  params = dict(params)
  per_layer = [params.pop(f'layer_{i}') for i in range(num_layers)]
  params['layers'] = jax.tree.map(lambda *xs: jnp.stack(xs), *per_layer)
  return params


def unstack_layers(params: dict[str, Any], num_layers: int) -> dict[str, Any]:
  """Scanned encoder params ('layers') -> unrolled (layer_0..layer_{n-1})."""
  params = dict(params)
  stacked = params.pop('layers')
  for i in range(num_layers):
    params[f'layer_{i}'] = jax.tree.map(lambda x, i=i: x[i], stacked)
  return params
