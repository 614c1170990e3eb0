"""Does the loader keep up? Rows/s from prepared shards vs what a step eats.

Reads a prepared split (`prepare`'s output) the way training does: grain over
`PreparedSource` (random access from disk, shuffled, global batch 32), for
`--seconds`, and counts rows/s. In the same run, times a BERT-base train step
at B=32, L=128 on this machine (`benchmark_step`'s bert_jax side, fp32) and
reports the ratio: rows/s the loader delivers over rows/s the step consumes.

    python -m experiments.benchmarks.corpus.benchmark_loader --prepared_dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import time

from absl import flags


def loader_rows_per_s(prepared_dir: str, batch: int, seconds: float,
                      workers: int) -> dict:
  from bert_jax.data import loader  # pylint: disable=g-import-not-at-top
  from bert_jax.data.pretrain import prepare  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags
  source = prepare.PreparedSource(prepared_dir, 'train')
  it = loader.make_loader(source, global_batch_size=batch, seed=0,
                          worker_count=workers)
  next(it)  # Start-up is not throughput.
  rows, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < seconds:
    rows += len(next(it)['input_ids'])
  dt = time.perf_counter() - t0
  return {'rows': rows, 'seconds': dt, 'rows_per_s': rows / dt,
          'split_rows': len(source)}


def step_rows_per_s(batch: int, steps: int) -> dict:
  from experiments.benchmarks import benchmark_step  # pylint: disable=g-import-not-at-top
  args = benchmark_step.parse_args(
      ['--size', 'base', '--batch', str(batch), '--seq_len', '128',
       '--steps', str(steps), '--warmup', '1', '--no_peer', '--dtype',
       'float32'])
  result = benchmark_step.run_jax(args)
  step = result['step_time_s']['median']
  return {'step_s': step, 'rows_per_s': batch / step}


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--prepared_dir', required=True)
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--seconds', type=float, default=20)
  p.add_argument('--loader_workers', type=int, default=0)
  p.add_argument('--steps', type=int, default=3)
  p.add_argument('--json', default='')
  a = p.parse_args()
  load = os.getloadavg()
  got = loader_rows_per_s(a.prepared_dir, a.batch, a.seconds, a.loader_workers)
  eat = step_rows_per_s(a.batch, a.steps)
  result = {'load_before': load, 'loader': got, 'bert_base_step': eat,
            'ratio': got['rows_per_s'] / eat['rows_per_s']}
  print(json.dumps(result, indent=2))
  print(f"loader {got['rows_per_s']:.0f} rows/s; BERT-base step at B={a.batch},"
        f" L=128 consumes {eat['rows_per_s']:.2f} rows/s ({eat['step_s']:.2f} "
        f"s/step): {result['ratio']:.0f}x")
  if a.json:
    with open(a.json, 'w') as f:
      json.dump(result, f, indent=2)


if __name__ == '__main__':
  main()
