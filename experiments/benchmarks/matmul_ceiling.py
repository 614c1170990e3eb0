r"""The fp32 matmul ceiling of this host: GFLOP/s of BERT-base's dense shapes.

Usage (from the repository root)::

  python experiments/benchmarks/matmul_ceiling.py [--tokens 1024] [--repeats 15] [--torch]

For each weight shape of a BERT-base layer (QKV 768x2304, attention output
768x768, FFN 768x3072 and 3072x768) at TOKENS rows (batch 8 x 128 = 1024),
it times one jitted function doing the forward product and both backward
products (x @ w, g @ w.T, x.T @ g), median of REPEATS, and prints GFLOP/s.
With --torch it times the same products in PyTorch (torch.matmul, all
cores). A train step cannot run faster than its matmul FLOPs at these rates:
docs/benchmarks.md uses this to bound what tuning the rest can gain.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

SHAPES = {'qkv': (768, 2304), 'attention_out': (768, 768),
          'ffn_in': (768, 3072), 'ffn_out': (3072, 768)}


def _median_s(fn, repeats: int) -> float:
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def jax_rates(tokens: int, repeats: int) -> dict[str, float]:
  import jax  # pylint: disable=g-import-not-at-top
  rates = {}
  for name, (k, n) in SHAPES.items():
    rng = np.random.default_rng(0)
    x, w, g = (jax.numpy.asarray(rng.standard_normal(s), np.float32)
               for s in ((tokens, k), (k, n), (tokens, n)))
    f = jax.jit(lambda x, w, g: (x @ w, g @ w.T, x.T @ g))
    rates[name] = 6 * tokens * k * n / _median_s(
        lambda: jax.block_until_ready(f(x, w, g)), repeats) / 1e9
  return rates


def torch_rates(tokens: int, repeats: int) -> dict[str, float]:
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  rates = {}
  for name, (k, n) in SHAPES.items():
    x, w, g = torch.randn(tokens, k), torch.randn(k, n), torch.randn(tokens, n)
    rates[name] = 6 * tokens * k * n / _median_s(
        lambda: (x @ w, g @ w.T, x.T @ g), repeats) / 1e9
  return rates


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--tokens', type=int, default=1024)
  p.add_argument('--repeats', type=int, default=15)
  p.add_argument('--torch', action='store_true')
  args = p.parse_args()
  result = {'jax': jax_rates(args.tokens, args.repeats)}
  if args.torch:
    result['torch'] = torch_rates(args.tokens, args.repeats)
  for side, rates in result.items():
    print(f'{side:>6} GFLOP/s: ' + ', '.join(
        f'{name} {rate:.0f}' for name, rate in rates.items()))
  print(json.dumps({side: {k: float(f"{v:.3g}") for k, v in r.items()}
                    for side, r in result.items()}))


if __name__ == '__main__':
  main()
