"""MFU counts each batch's FLOPs at the length it ran (a bucket's, when bucketed)."""

import types

import jax
import numpy as np

from bert_jax.train import throughput


def test_mfu_uses_each_batch_length_and_real_tokens():
  mc = types.SimpleNamespace(num_layers=2, hidden_size=4)
  params = {'embeddings': {'w': np.zeros((10, 4))},
            'dense': {'kernel': np.zeros((4, 4))}}
  f = throughput.flops_per_token(params, mc)
  assert f(8) == 6 * 16 + 12 * 2 * 4 * 8  # Embedding tables do no matmul.
  w = throughput.Window(f, peak_tflops=1.0)
  w.add(np.ones((2, 8)))                  # 16 real tokens at length 8
  w.add(np.array([[1, 1, 0, 0]]))         # 2 real tokens at length 4
  m = w.metrics(tokens_per_sec=100.0)
  mean_flops = (16 * f(8) + 2 * f(4)) / 18
  assert np.isclose(m['mfu'], 100.0 * mean_flops / (1e12 * jax.device_count()))
  assert np.isclose(m['padding_fraction'], 2 / 20)
  assert 'mfu' not in throughput.Window(None, 0.0).metrics(1.0)
