"""Building blocks of the encoder: norms, position encodings, attention, MLP.

Shape letters used in names:
  B batch, L query length, S key length, D hidden (embed), H heads,
  K head dim (kv), F intermediate (mlp), P masked positions, V vocab.

Every parameter carries logical axis names (``embed``, ``mlp``, ``heads``,
``kv``, ``vocab``); the mapping to mesh axes lives in the training config, so
nothing here knows about devices.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.models import dropout
from bert_jax.models.config import ModelConfig

Array = jax.Array


def dtype_of(name: str) -> Any:
  return jnp.dtype(name)


def kernel_init(config: ModelConfig, names: tuple[str | None, ...]):
  # BERT initialises every weight matrix with a truncated normal.
  return nn.with_logical_partitioning(
      nn.initializers.truncated_normal(config.initializer_range), names)


def zeros_init(names: tuple[str | None, ...]):
  return nn.with_logical_partitioning(nn.initializers.zeros_init(), names)


def ones_init(names: tuple[str | None, ...]):
  return nn.with_logical_partitioning(nn.initializers.ones_init(), names)


def activation(name: str) -> Callable[[Array], Array]:
  if name == 'gelu':
    return lambda x: nn.gelu(x, approximate=False)
  if name == 'gelu_new':
    return lambda x: nn.gelu(x, approximate=True)
  if name == 'relu':
    return nn.relu
  if name == 'silu':
    return nn.silu
  raise ValueError(f'Unknown activation {name!r}.')


def constrain(x: Array, names: tuple[str | None, ...]) -> Array:
  return nn.with_logical_constraint(x, names)


class Norm(nn.Module):
  """LayerNorm or RMSNorm; statistics are computed in float32 by flax."""
  config: ModelConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = self.config
    if c.norm_type == 'rmsnorm':
      return nn.RMSNorm(epsilon=c.layer_norm_eps, dtype=dtype_of(c.dtype),
                        param_dtype=dtype_of(c.param_dtype),
                        scale_init=ones_init(('embed',)), name='norm')(x)
    return nn.LayerNorm(epsilon=c.layer_norm_eps, use_bias=c.use_bias,
                        dtype=dtype_of(c.dtype),
                        param_dtype=dtype_of(c.param_dtype),
                        scale_init=ones_init(('embed',)),
                        bias_init=zeros_init(('embed',)), name='norm')(x)


def sinusoidal_table(num_positions: int, dim: int) -> np.ndarray:
  """The fixed sin/cos position table of Vaswani et al. [num_positions, dim]."""
  pos = np.arange(num_positions)[:, None]
  inv = np.exp(-math.log(10000.0) * np.arange(0, dim, 2) / dim)
  table = np.zeros((num_positions, dim), np.float32)
  table[:, 0::2] = np.sin(pos * inv)
  table[:, 1::2] = np.cos(pos * inv)[:, : dim // 2]
  return table


def apply_rope(x_BLHK: Array, positions_BL: Array, base: float) -> Array:
  """Rotary position embedding (rotate-half form), computed in float32."""
  k = x_BLHK.shape[-1]
  inv_freq = 1.0 / (base ** (jnp.arange(0, k, 2, dtype=jnp.float32) / k))
  angles_BLk = positions_BL.astype(jnp.float32)[..., None] * inv_freq
  angles_BLK = jnp.concatenate([angles_BLk, angles_BLk], axis=-1)[:, :, None, :]
  x = x_BLHK.astype(jnp.float32)
  x1, x2 = jnp.split(x, 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  out = x * jnp.cos(angles_BLK) + rotated * jnp.sin(angles_BLK)
  return out.astype(x_BLHK.dtype)


def alibi_slopes(num_heads: int) -> np.ndarray:
  """Per-head ALiBi slopes (Press et al.), including non-power-of-2 counts."""
  def power_of_2(n):
    start = 2 ** (-(2 ** -(math.log2(n) - 3)))
    return [start * start ** i for i in range(n)]
  if math.log2(num_heads).is_integer():
    return np.asarray(power_of_2(num_heads), np.float32)
  closest = 2 ** math.floor(math.log2(num_heads))
  extra = power_of_2(2 * closest)[0::2][: num_heads - closest]
  return np.asarray(power_of_2(closest) + extra, np.float32)


def alibi_bias(positions_BL: Array, num_heads: int) -> Array:
  """Symmetric ALiBi bias -slope * |i - j| for a bidirectional encoder [B,H,L,L]."""
  dist_BLL = jnp.abs(positions_BL[:, :, None] - positions_BL[:, None, :])
  slopes_H = jnp.asarray(alibi_slopes(num_heads))
  return -slopes_H[None, :, None, None] * dist_BLL[:, None].astype(jnp.float32)


def attention_mask_4d(attention_mask_BL: Array) -> Array:
  """Boolean [B,1,L,L]: query and key in the same example, key not padding.

  ``attention_mask`` is 0 at padding and otherwise an example id, so the
  usual 0/1 mask and packed rows (1, 1, 2, 2, 2, 0) are both handled.
  """
  m = attention_mask_BL
  same = m[:, None, :, None] == m[:, None, None, :]
  # Padding queries attend everywhere: their outputs are never used, and a row
  # with no allowed key can give NaN in fused kernels, which would then leak
  # into real positions through the next layer's padded keys (0 * NaN).
  return (same & (m[:, None, None, :] > 0)) | (m[:, None, :, None] == 0)


class Projection(nn.Module):
  """x @ kernel over the last ``contract`` dims of x (a DenseGeneral).

  Written out because flax's DenseGeneral initialises a flattened kernel,
  which breaks logically partitioned initialisers under a mesh.
  """
  kernel_shape: tuple[int, ...]
  kernel_axes: tuple[str, ...]
  contract: int
  config: ModelConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = self.config
    kernel = self.param('kernel', kernel_init(c, self.kernel_axes),
                        self.kernel_shape, dtype_of(c.param_dtype))
    dtype = dtype_of(c.dtype)
    # dtype change: parameters (param_dtype) are cast to the compute dtype.
    x = x.astype(dtype)
    kernel = kernel.astype(dtype)
    n = self.contract
    y = jax.lax.dot_general(
        x, kernel, (((tuple(range(x.ndim - n, x.ndim))), tuple(range(n))), ((), ())))
    if c.use_bias:
      out_shape = self.kernel_shape[n:]
      bias = self.param('bias', zeros_init(self.kernel_axes[n:]), out_shape,
                        dtype_of(c.param_dtype))
      y = y + bias.astype(dtype)
    return y


class SelfAttention(nn.Module):
  """Multi-head self-attention through ``jax.nn.dot_product_attention``."""
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BLD: Array, mask_B1LL: Array, positions_BL: Array,
               deterministic: bool) -> Array:
    c = self.config
    dtype = dtype_of(c.dtype)

    def proj(name):
      return Projection(
          kernel_shape=(c.hidden_size, c.num_heads, c.head_dim),
          kernel_axes=('embed', 'heads', 'kv'), contract=1, config=c,
          name=name)(x_BLD)

    q_BLHK, k_BLHK, v_BLHK = proj('query'), proj('key'), proj('value')
    q_BLHK = constrain(q_BLHK, ('batch', 'length', 'heads', 'kv'))
    k_BLHK = constrain(k_BLHK, ('batch', 'length', 'heads', 'kv'))
    v_BLHK = constrain(v_BLHK, ('batch', 'length', 'heads', 'kv'))
    if c.position_embedding == 'rope':
      q_BLHK = apply_rope(q_BLHK, positions_BL, c.rope_base)
      k_BLHK = apply_rope(k_BLHK, positions_BL, c.rope_base)
    bias = (alibi_bias(positions_BL, c.num_heads)
            if c.position_embedding == 'alibi' else None)

    use_dropout = not deterministic and c.attention_dropout > 0.0
    if use_dropout:
      # The fused kernel has no attention-probability dropout, so training
      # with attention_dropout > 0 takes this explicit path (softmax in fp32).
      scores = jnp.einsum('blhk,bshk->bhls', q_BLHK, k_BLHK,
                          preferred_element_type=jnp.float32)
      scores = scores / math.sqrt(c.head_dim)
      if bias is not None:
        scores = scores + bias
      big_neg = jnp.finfo(jnp.float32).min
      scores = jnp.where(mask_B1LL, scores, big_neg)
      probs = jax.nn.softmax(scores, axis=-1)
      probs = dropout.Dropout(rate=c.attention_dropout)(
          probs, deterministic=False).astype(dtype)
      out_BLHK = jnp.einsum('bhls,bshk->blhk', probs, v_BLHK)
    else:
      out_BLHK = jax.nn.dot_product_attention(
          q_BLHK, k_BLHK, v_BLHK,
          bias=None if bias is None else bias.astype(q_BLHK.dtype),
          mask=mask_B1LL, implementation=c.attention_impl)
    out_BLD = Projection(
        kernel_shape=(c.num_heads, c.head_dim, c.hidden_size),
        kernel_axes=('heads', 'kv', 'embed'), contract=2, config=c,
        name='out')(out_BLHK)
    return constrain(out_BLD, ('batch', 'length', 'embed'))


class Mlp(nn.Module):
  """Feed-forward block: GELU (BERT), or gated GeGLU / SwiGLU."""
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BLD: Array) -> Array:
    c = self.config
    dtype, pdtype = dtype_of(c.dtype), dtype_of(c.param_dtype)

    def dense(features, names, name):
      return nn.Dense(features, use_bias=c.use_bias, dtype=dtype,
                      param_dtype=pdtype, kernel_init=kernel_init(c, names),
                      bias_init=zeros_init(names[1:]), name=name)

    if c.mlp_type == 'gelu':
      h_BLF = activation(c.hidden_act)(dense(c.intermediate_size,
                                             ('embed', 'mlp'), 'wi')(x_BLD))
    else:
      gate_act = nn.gelu if c.mlp_type == 'geglu' else nn.silu
      gate = dense(c.intermediate_size, ('embed', 'mlp'), 'wi_0')(x_BLD)
      up = dense(c.intermediate_size, ('embed', 'mlp'), 'wi_1')(x_BLD)
      h_BLF = gate_act(gate) * up
    h_BLF = constrain(h_BLF, ('batch', 'length', 'mlp'))
    out = dense(c.hidden_size, ('mlp', 'embed'), 'wo')(h_BLF)
    return constrain(out, ('batch', 'length', 'embed'))


class TransformerLayer(nn.Module):
  """One encoder layer, post-LN (BERT) or pre-LN.

  The call signature is scan-friendly: ``(carry, *broadcast) -> (carry, None)``.
  """
  config: ModelConfig

  @nn.compact
  def __call__(self, x_BLD: Array, mask_B1LL: Array, positions_BL: Array,
               deterministic: bool):
    c = self.config
    drop = lambda y: dropout.Dropout(rate=c.hidden_dropout)(
        y, deterministic=deterministic)
    attn = SelfAttention(c, name='attention')
    mlp = Mlp(c, name='mlp')
    if c.norm_placement == 'post':
      x_BLD = Norm(c, name='attention_norm')(
          x_BLD + drop(attn(x_BLD, mask_B1LL, positions_BL, deterministic)))
      x_BLD = Norm(c, name='mlp_norm')(x_BLD + drop(mlp(x_BLD)))
    else:
      h = Norm(c, name='attention_norm')(x_BLD)
      x_BLD = x_BLD + drop(attn(h, mask_B1LL, positions_BL, deterministic))
      x_BLD = x_BLD + drop(mlp(Norm(c, name='mlp_norm')(x_BLD)))
    x_BLD = constrain(x_BLD, ('batch', 'length', 'embed'))
    return x_BLD, None
