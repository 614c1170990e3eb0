"""What a log window achieved: real tokens/s, the padding share, and MFU.

MFU counts the model's FLOPs the way the benchmarks do (PaLM's appendix B):
``6 N`` per real token for the dense matmuls forward and backward (N = the
parameters outside the embedding tables) plus ``12 layers * hidden * L`` for
attention, against ``train.peak_tflops`` per device. Padding positions cost
compute but count as no work, so packing and bucketing show up as MFU.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def non_embedding_params(params: Any) -> int:
  """Parameters outside embedding tables (they do no matmul per token)."""
  total = 0
  for path, x in jax.tree_util.tree_flatten_with_path(params)[0]:
    if 'embeddings' not in jax.tree_util.keystr(path):
      total += int(np.prod(x.shape))
  return total


def flops_per_token(params: Any, model_config: Any, seq_len: int) -> float:
  """Training FLOPs per real token (see the module docstring)."""
  return (6.0 * non_embedding_params(params)
          + 12.0 * model_config.num_layers * model_config.hidden_size * seq_len)


class Window:
  """Counts real and padded positions between two log lines."""

  def __init__(self, flops_per_token: float, peak_tflops: float):
    self.flops_per_token, self.peak_tflops = flops_per_token, peak_tflops
    self.tokens = self.positions = 0.0

  def add(self, attention_mask: np.ndarray) -> None:
    # Every process sees its own rows; they hold the same share of padding.
    scale = jax.process_count()
    self.tokens += float(np.count_nonzero(attention_mask)) * scale
    self.positions += float(attention_mask.size) * scale

  def metrics(self, tokens_per_sec: float) -> dict[str, float]:
    """padding_fraction of the window, and mfu when peak_tflops is set."""
    out = {'padding_fraction': 1.0 - self.tokens / max(self.positions, 1.0)}
    if self.peak_tflops > 0:
      achieved = tokens_per_sec * self.flops_per_token
      out['mfu'] = achieved / (self.peak_tflops * 1e12 * jax.device_count())
    self.tokens = self.positions = 0.0
    return out
