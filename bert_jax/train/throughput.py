"""What a log window achieved: real tokens/s, the padding share, and MFU.

MFU counts the model's FLOPs the way the benchmarks do (PaLM's appendix B):
``6 N`` per real token for the dense matmuls forward and backward (N = the
parameters outside the embedding tables) plus ``12 layers * hidden * L`` for
attention, against ``train.peak_tflops`` per device, with L the length of each batch
as it ran (a length bucket's, in fine-tuning). Padding positions cost
compute but count as no work, so packing and bucketing show up as MFU.
"""

from __future__ import annotations

from collections.abc import Callable
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


def flops_per_token(params: Any, model_config: Any) -> Callable[[int], float]:
  """L -> training FLOPs per real token at length L (the module docstring)."""
  dense = 6.0 * non_embedding_params(params)
  attention = 12.0 * model_config.num_layers * model_config.hidden_size
  return lambda seq_len: dense + attention * seq_len


class Window:
  """Counts real and padded positions (and model FLOPs) between two log lines."""

  def __init__(self, flops_per_token: Callable[[int], float] | None,
               peak_tflops: float):
    """FLOPS_PER_TOKEN(L): training FLOPs per real token of a batch of length
    L (from ``flops_per_token``); None or PEAK_TFLOPS <= 0: no MFU."""
    self.flops_fn, self.peak_tflops = flops_per_token, peak_tflops
    self.tokens = self.positions = self.flops = 0.0

  def add(self, attention_mask: np.ndarray) -> None:
    # Every process sees its own rows; they hold the same share of padding.
    scale = jax.process_count()
    tokens = float(np.count_nonzero(attention_mask)) * scale
    self.tokens += tokens
    self.positions += float(attention_mask.size) * scale
    if self.flops_fn is not None and self.peak_tflops > 0:
      self.flops += tokens * self.flops_fn(attention_mask.shape[-1])

  def metrics(self, tokens_per_sec: float) -> dict[str, float]:
    """padding_fraction of the window, and mfu when peak_tflops is set."""
    out = {'padding_fraction': 1.0 - self.tokens / max(self.positions, 1.0)}
    if self.flops_fn is not None and self.peak_tflops > 0:
      achieved = tokens_per_sec * self.flops / max(self.tokens, 1.0)
      out['mfu'] = achieved / (self.peak_tflops * 1e12 * jax.device_count())
    self.tokens = self.positions = self.flops = 0.0
    return out
