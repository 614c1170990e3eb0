r"""Compile time and device memory of the real train step, by depth and remat.

Usage (from the repository root)::

  python -m experiments.scaling.compile_scale [--sizes=base,large] [--batch=8] \
      [--seq_len=128] [--scan=False,True] [--remat=none,dots,full] \
      [--remat_sizes=large] [--dtype=auto] [--json=OUT.json]

For every size in ``--sizes`` and every ``--scan`` value it lowers and
compiles the pretraining train step exactly as the trainer builds it
(``experiments.scaling.aot.compile_train_step`` over this host's first device:
``configs/pretrain.py``, ``step.jit_steps``, the trainer's shardings), with
``remat_policy=none``; for the sizes in ``--remat_sizes`` it also compiles
each ``--remat`` policy. Each row gives the lowering and compile wall time,
the compile's CPU time (XLA's CPU backend compiles on several threads, and
CPU time moves less than wall time when the machine is shared), and the
compiler's memory account for one device: arguments (the train state and the
batch), outputs, temporaries (activations kept for the backward pass and
scratch), and their total less what the outputs alias (the donated state).

Nothing is run: the figures are the compiler's. On CPU ``dtype=auto`` is
float32, as in the trainer; on a GPU or TPU host it is bfloat16 and the
memory is that accelerator's. docs/benchmarks.md has a table made with it.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from typing import Any

from absl import app
from absl import flags
import jax

from bert_jax.models import config as model_config_lib
from bert_jax.configs import pretrain
from experiments.scaling import aot
from experiments.scaling import aot_topology

flags.DEFINE_list('sizes', ['base', 'large'], 'Model sizes (configs size table).')
flags.DEFINE_integer('batch', 8, 'Global batch size.')
flags.DEFINE_integer('seq_len', 128, 'data.max_seq_length.')
flags.DEFINE_list('scan', ['False', 'True'], 'model.scan_layers values.')
flags.DEFINE_list('remat', ['none', 'dots_with_no_batch_dims', 'dots', 'full'],
                  'model.remat_policy values for --remat_sizes.')
flags.DEFINE_list('remat_sizes', ['large'], 'Sizes compiled with each --remat.')
flags.DEFINE_string('objective', 'mlm_nsp', 'Pretraining objective.')
flags.DEFINE_enum('dtype', 'auto', ['auto', 'float32', 'bfloat16'],
                  "Compute dtype; 'auto' = the trainer's choice on this backend.")
# --vocab_size (30522, BERT uncased) and --json are experiments.scaling.aot's flags.

_MIB = 1024 ** 2


def _config(size: str, objective: str, batch: int, seq_len: int, scan: bool,
            remat: str, dtype: str) -> Any:
  config = pretrain.get_config(f'size={size},objective={objective}')
  config.unlock()
  config.train.global_batch_size = batch
  config.data.max_seq_length = seq_len
  config.model.scan_layers = scan
  config.model.remat_policy = remat
  if dtype == 'auto':
    dtype = 'float32' if jax.default_backend() == 'cpu' else 'bfloat16'
  config.model.dtype = dtype
  return config


def compile_row(size: str, scan: bool, remat: str, *, objective: str = 'mlm_nsp',
                batch: int = 8, seq_len: int = 128, dtype: str = 'auto',
                vocab_size: int = 30522) -> dict[str, Any]:
  """One compile of the train step on this host's first device."""
  config = _config(size, objective, batch, seq_len, scan, remat, dtype)
  target = aot_topology.LocalTarget(devices=tuple(jax.local_devices()[:1]))
  cpu0 = time.process_time()
  c = aot.compile_train_step(config, target, vocab_size=vocab_size)
  cpu_s = time.process_time() - cpu0
  m = c.compiled.memory_analysis()
  mem = {k: int(getattr(m, f'{k}_size_in_bytes', 0) or 0)
         for k in ('argument', 'output', 'alias', 'temp')}
  mem['total'] = mem['argument'] + mem['output'] - mem['alias'] + mem['temp']
  return {
      'size': size, 'layers': c.model_config.num_layers, 'scan_layers': scan,
      'remat_policy': remat, 'dtype': config.model.dtype, 'batch': batch,
      'seq_len': seq_len,
      'params': int(sum(x.size for x in jax.tree.leaves(c.params))),
      'lower_s': round(c.lower_s, 2),
      'compile_s': round(c.compile_s, 2), 'compile_cpu_s': round(cpu_s, 2),
      'memory_mib': {k: round(v / _MIB, 1) for k, v in mem.items()},
  }


def plan(sizes: list[str], scans: list[bool], remats: list[str],
         remat_sizes: list[str]) -> list[tuple[str, bool, str]]:
  """(size, scan, remat) rows: every size x scan at no remat, then remat rows."""
  for s in sizes + remat_sizes:
    model_config_lib.config_for_size(s)  # Fails naming the valid sizes.
  rows = [(s, sc, 'none') for s, sc in itertools.product(sizes, scans)]
  rows += [(s, sc, r) for s, sc, r in itertools.product(remat_sizes, scans, remats)
           if (s, sc, r) not in rows]
  return rows


def format_row(r: dict[str, Any]) -> str:
  m = r['memory_mib']
  return (f"| {r['size']} ({r['layers']} layers) | {'scan' if r['scan_layers'] else 'unrolled'} "
          f"| {r['remat_policy']} | {r['lower_s']:.1f} | {r['compile_s']:.1f} "
          f"| {r['compile_cpu_s']:.1f} | {m['argument']:,.0f} | {m['temp']:,.0f} "
          f"| {m['total']:,.0f} |")


HEADER = ('| model | layers | remat | lower s | compile s (wall) | compile s (CPU) '
          '| arguments MiB | temporaries MiB | total MiB |\n'
          '|---|---|---|---|---|---|---|---|---|')


def _bool(s: str) -> bool:
  if s.lower() not in ('true', 'false'):
    raise app.UsageError(f'--scan takes True/False values, got {s!r}.')
  return s.lower() == 'true'


def main(argv: list[str]) -> int:
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  rows = plan(f.sizes, [_bool(s) for s in f.scan], f.remat, f.remat_sizes)
  print(f'backend {jax.default_backend()} ({jax.local_devices()[0].device_kind}); '
        f'load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs',
        flush=True)
  print(HEADER, flush=True)
  results = []
  for size, scan, remat in rows:
    r = compile_row(size, scan, remat, objective=f.objective, batch=f.batch,
                    seq_len=f.seq_len, dtype=f.dtype, vocab_size=f.vocab_size)
    results.append(r)
    print(format_row(r), flush=True)
  if f.json:
    with open(f.json, 'w') as out:
      json.dump({'command': ' '.join(['python -m experiments.scaling.compile_scale']
                                     + sys.argv[1:]),
                 'backend': jax.default_backend(), 'rows': results}, out,
                indent=2)
  return 0


if __name__ == '__main__':
  app.run(lambda argv: sys.exit(main(argv)))
