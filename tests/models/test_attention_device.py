"""Device-dependent checks: run on a GPU by experiments/scaling/device_check.py
(BERT_JAX_TEST_DEVICE=1 keeps the accelerator instead of conftest's fake CPU
devices); on a CPU they skip."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

on_gpu = pytest.mark.skipif(
    not os.environ.get('BERT_JAX_TEST_DEVICE') or jax.default_backend() != 'gpu',
    reason='needs a GPU and BERT_JAX_TEST_DEVICE=1 (device_check.py)')


@on_gpu
def test_cudnn_attention_matches_xla_with_padding():
  """The fused kernel (attention_impl='cudnn') against XLA's, bf16, BERT's
  padding mask: equal at real positions to bf16 precision."""
  B, L, H, K = 4, 128, 12, 64
  rng = np.random.default_rng(0)
  q, k, v = (jnp.asarray(rng.normal(size=(B, L, H, K)), jnp.bfloat16)
             for _ in range(3))
  lengths = np.array([128, 100, 64, 17])
  valid_BL = np.arange(L)[None] < lengths[:, None]
  mask_B1LL = jnp.asarray(valid_BL[:, None, None, :] & valid_BL[:, None, :, None])
  outs = [jax.jit(lambda q, k, v, m, impl=impl: jax.nn.dot_product_attention(
      q, k, v, mask=m, implementation=impl))(q, k, v, mask_B1LL)
          for impl in ('xla', 'cudnn')]
  real = valid_BL[:, :, None, None]
  a, b = (np.where(real, np.asarray(o, np.float32), 0) for o in outs)
  np.testing.assert_allclose(a, b, atol=2e-2, rtol=2e-2)


@on_gpu
def test_the_gpu_is_what_jax_uses():
  assert all(d.platform == 'gpu' for d in jax.devices())
