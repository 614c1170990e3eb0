"""A linear-chain conditional random field over word-level emissions.

Shape letters: B batch, W positions of the chain (words), T tags.

The CRF scores a tag path y_1..y_n (over the *unmasked* positions, in order) as

  start[y_1] + sum_i emissions[i, y_i] + sum_i trans[y_i, y_{i+1}] + end[y_n]

and normalises over all T**n paths with the forward algorithm. Masked
positions are skipped, not scored: the transition from the last kept
position goes straight to the next kept one. A row with nothing kept has one
(empty) path of score 0. For BERT tagging the chain runs over words (the
first sub-token of each, gathered by the caller), so transitions connect
consecutive words and never see sub-tokens, specials or padding.

All arithmetic is float32 whatever the dtype of the emissions: the forward
recursion sums many log-probabilities and bf16 would lose the path scores.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def _uniform_init(scale: float):
  # As pytorch-crf: small symmetric values, so no tag pair starts favoured.
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


class CRF(nn.Module):
  """Linear-chain CRF with start, end and pairwise transition scores.

  Attributes:
    num_tags: T.
    init_scale: Transitions start uniform in [-init_scale, init_scale].
  """
  num_tags: int
  init_scale: float = 0.1

  def setup(self):
    T = self.num_tags
    init = lambda names: nn.with_logical_partitioning(
        _uniform_init(self.init_scale), names)
    # transitions[i, j]: score of tag j following tag i.
    self.transitions = self.param('transitions', init((None, None)), (T, T),
                                  jnp.float32)
    self.start_transitions = self.param('start_transitions', init((None,)),
                                        (T,), jnp.float32)
    self.end_transitions = self.param('end_transitions', init((None,)), (T,),
                                      jnp.float32)

  def _weights(self) -> tuple[Array, Array, Array]:
    # jnp.asarray: params may arrive as host numpy arrays, which traced
    # indices cannot index.
    return (jnp.asarray(self.transitions), jnp.asarray(self.start_transitions),
            jnp.asarray(self.end_transitions))

  def __call__(self, emissions_BWT: Array, tags_BW: Array,
               mask_BW: Array) -> Array:
    """Same as ``log_likelihood`` (the method ``init`` traces)."""
    return self.log_likelihood(emissions_BWT, tags_BW, mask_BW)

  def _check(self, emissions_BWT: Array, mask_BW: Array) -> None:
    if emissions_BWT.ndim != 3 or emissions_BWT.shape[-1] != self.num_tags:
      raise ValueError(f'CRF emissions must be [B, W, {self.num_tags}], got '
                       f'{emissions_BWT.shape}.')
    if mask_BW.shape != emissions_BWT.shape[:2]:
      raise ValueError(f'CRF mask {mask_BW.shape} does not match emissions '
                       f'{emissions_BWT.shape[:2]}.')

  def log_likelihood(self, emissions_BWT: Array, tags_BW: Array,
                     mask_BW: Array) -> Array:
    """log p(tags | emissions) per row, float32 [B].

    Args:
      emissions_BWT: Unnormalised tag scores per position.
      tags_BW: Gold tags (any value where masked).
      mask_BW: 1 where the position is part of the chain.
    """
    self._check(emissions_BWT, mask_BW)
    # dtype change: the whole recursion runs in float32.
    e_WBT = jnp.swapaxes(emissions_BWT.astype(jnp.float32), 0, 1)
    m_WB = jnp.swapaxes(mask_BW > 0, 0, 1)
    y_WB = jnp.swapaxes(jnp.where(mask_BW > 0, tags_BW, 0), 0, 1).astype(jnp.int32)
    return (self._path_score(e_WBT, y_WB, m_WB)
            - self._log_partition(e_WBT, m_WB))

  def _path_score(self, e_WBT: Array, y_WB: Array, m_WB: Array) -> Array:
    B = e_WBT.shape[1]
    trans_TT, start_T, end_T = self._weights()

    def step(carry, xs):
      score_B, prev_B, started_B = carry
      e_BT, y_B, m_B = xs
      emit_B = jnp.take_along_axis(e_BT, y_B[:, None], axis=1)[:, 0]
      link_B = jnp.where(started_B, trans_TT[prev_B, y_B], start_T[y_B])
      score_B = score_B + jnp.where(m_B, emit_B + link_B, 0.0)
      return (score_B, jnp.where(m_B, y_B, prev_B), started_B | m_B), None

    init = (jnp.zeros((B,), jnp.float32), jnp.zeros((B,), jnp.int32),
            jnp.zeros((B,), bool))
    (score_B, last_B, started_B), _ = jax.lax.scan(step, init, (e_WBT, y_WB, m_WB))
    return score_B + jnp.where(started_B, end_T[last_B], 0.0)

  def _log_partition(self, e_WBT: Array, m_WB: Array) -> Array:
    B, T = e_WBT.shape[1:]
    trans_TT, start_T, end_T = self._weights()

    def step(carry, xs):
      alpha_BT, started_B = carry
      e_BT, m_B = xs
      # alpha[b, i] + trans[i, j], summed out over the previous tag i.
      moved_BT = jax.nn.logsumexp(
          alpha_BT[:, :, None] + trans_TT[None], axis=1)
      new_BT = jnp.where(started_B[:, None], moved_BT, start_T[None]) + e_BT
      alpha_BT = jnp.where(m_B[:, None], new_BT, alpha_BT)
      return (alpha_BT, started_B | m_B), None

    init = (jnp.zeros((B, T), jnp.float32), jnp.zeros((B,), bool))
    (alpha_BT, started_B), _ = jax.lax.scan(step, init, (e_WBT, m_WB))
    log_z_B = jax.nn.logsumexp(alpha_BT + end_T[None], axis=1)
    return jnp.where(started_B, log_z_B, 0.0)

  def viterbi_decode(self, emissions_BWT: Array, mask_BW: Array) -> Array:
    """The highest-scoring tag path per row, int32 [B, W] (0 where masked)."""
    self._check(emissions_BWT, mask_BW)
    # dtype change: float32 so near-tied paths are ranked as log_likelihood does.
    e_WBT = jnp.swapaxes(emissions_BWT.astype(jnp.float32), 0, 1)
    m_WB = jnp.swapaxes(mask_BW > 0, 0, 1)
    B, T = e_WBT.shape[1:]
    trans_TT, start_T, end_T = self._weights()
    identity_BT = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))

    def forward(carry, xs):
      delta_BT, started_B = carry
      e_BT, m_B = xs
      cand_BTT = delta_BT[:, :, None] + trans_TT[None]
      best_prev_BT = jnp.argmax(cand_BTT, axis=1).astype(jnp.int32)
      moved_BT = jnp.max(cand_BTT, axis=1)
      new_BT = jnp.where(started_B[:, None], moved_BT, start_T[None]) + e_BT
      # A skipped (or first) position points each tag back to itself, so the
      # backtrack walks through it unchanged.
      keep_BT = m_B[:, None] & started_B[:, None]
      back_BT = jnp.where(keep_BT, best_prev_BT, identity_BT)
      delta_BT = jnp.where(m_B[:, None], new_BT, delta_BT)
      return (delta_BT, started_B | m_B), back_BT

    init = (jnp.zeros((B, T), jnp.float32), jnp.zeros((B,), bool))
    (delta_BT, _), back_WBT = jax.lax.scan(forward, init, (e_WBT, m_WB))
    last_B = jnp.argmax(delta_BT + end_T[None], axis=1).astype(jnp.int32)

    def backward(cur_B, xs):
      back_BT, m_B = xs
      tag_B = jnp.where(m_B, cur_B, 0)
      return jnp.take_along_axis(back_BT, cur_B[:, None], axis=1)[:, 0], tag_B

    _, tags_WB = jax.lax.scan(backward, last_B, (back_WBT, m_WB), reverse=True)
    return jnp.swapaxes(tags_WB, 0, 1)
