"""Prepare a pretraining corpus once, at any size: streaming, parallel, resumable.

    python -m bert_jax.data.pretrain.prepare --corpus 'corpus/*.txt' \\
        --tokenizer VOCAB_DIR --out /data/wiki_128_nsp \\
        [--objective mlm_nsp] [--max_seq_length 128] [--eval_fraction 0.01] \\
        [--workers N] [--runner local|beam]

The corpus (`corpora` specs: text files or globs, local or gs://;
'tfds:NAME[:SPLIT]'; 'builtin') is cut into work units
(`bert_jax.data.pretrain.units`: document-aligned chunks of --unit_mb of text,
or --tfds_records_per_unit records), planned from the input alone. Each unit
is read, tokenized and turned into examples on its own (NSP/SOP negatives come
from the same unit, as in Google's per-shard processing), packed (several
examples a row, `packing`; --max_examples_per_row 1 turns it off) and written
as its own shard, then marked done under `units/`. `meta.json` is written
last, so a directory with one is complete. Memory per process is bounded by
the unit size, not the corpus.

Runners: `--runner local` (default) runs units in --workers processes (default:
the cores of this machine); `--runner beam` runs the same per-unit function as
an Apache Beam pipeline (pip install 'bert_jax[beam]'; options the parser
does not know, e.g. --runner_options='--runner=DataflowRunner --project=P',
go to Beam; docs/pretraining.md has the Dataflow, Flink and Spark commands).
For a given seed, every runner and worker count writes the same records in
the same order and the same `meta.json` except its "run" block (timings).

Killed and run again with the same arguments, finished units (checked against
their recorded size and blake2b) are kept and the rest redone; other
arguments into the same --out are refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import errno
import hashlib
import json
import multiprocessing
import os
import shlex
import sys
import time
from typing import Any

from bert_jax import storage
from bert_jax.data.pretrain import beam_pipeline  # Beam itself loads lazily.
from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import objectives
from bert_jax.data.pretrain import progress as progress_lib
from bert_jax.data.pretrain import shards
from bert_jax.data.pretrain import unit_job
from bert_jax.data.pretrain import units as units_lib
from bert_jax.data.pretrain.shards import (  # Re-exported: the reading API.
    FORMAT, META_FILE, PreparedSource, load_prepared, read_meta)
from bert_jax.errors import UserInputError
from bert_jax import errors
from bert_jax.text import load_tokenizer

__all__ = ['FORMAT', 'META_FILE', 'PreparedSource', 'load_prepared',
           'read_meta', 'prepare', 'main']

ARGS_FILE = 'args.json'
# As the trainer's data.max_examples_per_row: rows read the same either way.
DEFAULT_EXAMPLES_PER_ROW = 8


def prepare(corpus: str, tokenizer: Any, out_dir: str, *,
            tokenizer_id: str | None = None,
            max_seq_length: int = 128, objective: str = 'mlm_nsp',
            short_seq_prob: float = 0.1, dupe_factor: int = 1, seed: int = 0,
            eval_fraction: float = 0.0,
            max_examples_per_row: int = DEFAULT_EXAMPLES_PER_ROW,
            unit_mb: float = 4.0, tfds_records_per_unit: int = 1000,
            text_key: str = 'text', data_dir: str | None = None,
            invalid_utf8: str = 'error', max_line_bytes: int = 1 << 20,
            workers: int = 1, runner: str = 'local',
            beam_args: Sequence[str] = (), quiet: bool = True
            ) -> dict[str, Any]:
  """Corpus -> shards in OUT_DIR; see the module docstring.

  Args:
    corpus: A `corpora` spec.
    tokenizer: A tokenizer directory/vocab path (what workers load), or a
      `bert_jax.text.Tokenizer` (pickled to workers).
    out_dir: Output folder (local or gs://).
    tokenizer_id: What identifies the tokenizer in the recorded arguments
      (default: the path, or the object's class and vocabulary size).
    max_seq_length .. eval_fraction: The example recipe
      (`bert_jax.data.pretrain.examples`); eval_fraction holds out documents.
    max_examples_per_row: K of packing; 1 = one example a row (no packing).
    unit_mb, tfds_records_per_unit: The size of a work unit.
    text_key, data_dir: For TFDS corpora.
    invalid_utf8: 'error' (file:line) or 'replace' (U+FFFD, counted).
    max_line_bytes: Longer lines are skipped and counted.
    workers: Processes of the local runner (1 = this process).
    runner: 'local' or 'beam'.
    beam_args: Pipeline options for Beam.
    quiet: No progress line.

  Returns:
    The metadata written to `meta.json`.
  """
  objectives.get(objective)  # Fail before the corpus is read.
  _check_args(max_seq_length, dupe_factor, eval_fraction, max_examples_per_row,
              workers, runner, short_seq_prob)
  settings = {
      'corpus': corpus, 'max_seq_length': max_seq_length,
      'objective': objective, 'short_seq_prob': short_seq_prob,
      'dupe_factor': dupe_factor, 'seed': seed, 'eval_fraction': eval_fraction,
      'max_examples_per_row': max_examples_per_row,
      'unit_bytes': int(unit_mb * (1 << 20)),
      'tfds_records_per_unit': tfds_records_per_unit, 'text_key': text_key,
      'invalid_utf8': invalid_utf8, 'max_line_bytes': max_line_bytes,
      'tokenizer': tokenizer_id or _tokenizer_id(tokenizer),
  }
  t0 = time.perf_counter()
  plan = units_lib.plan(corpus, unit_bytes=settings['unit_bytes'],
                        tfds_records_per_unit=tfds_records_per_unit,
                        text_key=text_key, data_dir=data_dir)
  settings['plan_blake2b'] = hashlib.blake2b(
      json.dumps(plan, sort_keys=True).encode(), digest_size=16).hexdigest()
  existing = _claim(out_dir, settings)
  if existing is not None:
    return existing
  jobs = [{'index': i, 'num_units': len(plan), 'unit': u, 'out_dir': out_dir,
           'tokenizer': tokenizer, 'settings': settings}
          for i, u in enumerate(plan)]
  shown = progress_lib.Progress(units_lib.total_bytes(plan), len(plan), quiet)
  if runner == 'beam':
    beam_pipeline.run(jobs, beam_args)
    # The workers just wrote and hashed these: sizes are enough here.
    markers = [unit_job.finished(out_dir, i, verify=False)
               for i in range(len(plan))]
    missing = [i for i, m in enumerate(markers) if m is None]
    if missing:
      raise RuntimeError(f'the Beam pipeline finished but units {missing[:10]} '
                         f'of {out_dir} are not: run again to redo them')
  else:
    markers = [None] * len(plan)
    for marker in _run_local(jobs, workers):
      markers[marker['index']] = marker
      shown.update(marker)
  shown.close()
  meta = _meta(settings, tokenizer, markers, plan)
  meta['run'] = {'runner': runner, 'units': len(plan),
                 'workers': workers if runner == 'local' else None,
                 'units_reused': sum(bool(m.get('reused')) for m in markers),
                 'seconds': round(time.perf_counter() - t0, 2)}
  if meta['run']['seconds'] > 0:
    meta['run']['mb_per_s'] = round(
        meta['bytes'] / 2**20 / meta['run']['seconds'], 2)
  # Last: meta.json marks the folder complete.
  storage.write_text(os.path.join(out_dir, META_FILE),
                     json.dumps(meta, indent=2, sort_keys=True) + '\n')
  return meta


def _check_args(max_seq_length, dupe_factor, eval_fraction, k, workers, runner,
                short_seq_prob):
  if max_seq_length < 6:
    raise UserInputError(f'--max_seq_length must be >= 6, got {max_seq_length}')
  if dupe_factor < 1:
    raise UserInputError(f'--dupe_factor must be >= 1, got {dupe_factor}')
  if not 0.0 <= eval_fraction < 1.0:
    raise UserInputError(f'--eval_fraction must be in [0, 1), got '
                         f'{eval_fraction}')
  if not 0.0 <= short_seq_prob <= 1.0:
    raise UserInputError(f'--short_seq_prob must be in [0, 1], got '
                         f'{short_seq_prob}')
  if k < 1:
    raise UserInputError(f'--max_examples_per_row must be >= 1 (1 = no '
                         f'packing), got {k}')
  if workers < 1:
    raise UserInputError(f'--workers must be >= 1, got {workers}')
  if runner not in ('local', 'beam'):
    raise UserInputError(f"--runner must be 'local' or 'beam', got {runner!r}")


def _tokenizer_id(tokenizer: Any) -> str:
  if isinstance(tokenizer, str):
    return tokenizer
  return f'{type(tokenizer).__name__}(vocab_size={tokenizer.vocab_size})'


def _claim(out_dir: str, settings: dict[str, Any]) -> dict[str, Any] | None:
  """Records SETTINGS in OUT_DIR, or checks them against an earlier run's.

  Returns the existing metadata if OUT_DIR is already complete with them.
  """
  path = os.path.join(out_dir, unit_job.UNITS_DIR, ARGS_FILE)
  if storage.exists(path):
    before = json.loads(storage.read_text(path))
    if before != settings:
      diff = [f'{k}: {before.get(k)!r} then, {settings.get(k)!r} now'
              for k in sorted(set(before) | set(settings))
              if before.get(k) != settings.get(k)]
      raise UserInputError(
          f'{out_dir} holds a preparation with other arguments '
          f'({"; ".join(diff)}); use another --out, or delete it to start over')
    if storage.exists(os.path.join(out_dir, META_FILE)):
      return read_meta(out_dir)
    return None
  if storage.exists(os.path.join(out_dir, META_FILE)):
    raise UserInputError(f'{out_dir} already holds prepared examples '
                         f'({META_FILE}) from an older version; choose '
                         'another --out')
  storage.makedirs(os.path.join(out_dir, unit_job.UNITS_DIR))
  storage.write_text(path, json.dumps(settings, indent=2, sort_keys=True))
  return None


def _run_local(jobs, workers):
  if workers == 1 or len(jobs) <= 1:
    for job in jobs:
      yield unit_job.run_unit(job)
    return
  # spawn, not fork: the tokenizer's Rust thread pool does not survive a fork.
  ctx = multiprocessing.get_context('spawn')
  with ctx.Pool(min(workers, len(jobs))) as pool:
    yield from pool.imap_unordered(unit_job.run_unit, jobs, chunksize=1)


def _meta(settings, tokenizer, markers, plan) -> dict[str, Any]:
  tok = unit_job.load_tokenizer(tokenizer)
  features = next((m['features'] for m in markers if 'features' in m), [])
  meta = {'format': FORMAT, 'features': features, 'splits': {},
          'vocab_size': tok.vocab_size,
          'special_ids': {name: getattr(tok, name + '_id')
                          for name in ('pad', 'unk', 'cls', 'sep', 'mask')},
          'units': len(plan)}
  meta.update({k: v for k, v in settings.items() if k != 'plan_blake2b'})
  for key in ('bytes', 'documents', 'replaced_bytes', 'long_lines'):
    meta[key] = sum(m['stats'].get(key, 0) for m in markers)
  for split in ('train', 'eval'):
    counts = [m['counts'][split] for m in markers if split in m['counts']]
    if not counts:
      continue
    total = {k: sum(c[k] for c in counts) for k in counts[0]}
    meta['splits'][split] = {
        'num_documents': total['documents'],
        'num_examples': total['examples'], 'num_rows': total['rows'],
        'padding_fraction': round(
            1 - total['real_tokens'] / max(total['positions'], 1), 4),
        'files': [m['splits'][split]['file'] for m in markers
                  if split in m['splits']]}
  if not meta['splits'].get('train', {}).get('num_rows'):
    raise UserInputError(
        f'corpus {settings["corpus"]!r} gave no training examples '
        f'({meta["documents"]} documents with text, {meta["long_lines"]} '
        'over-long lines skipped): expected sentences, one a line, documents '
        'separated by blank lines')
  if settings['eval_fraction'] > 0 and not meta['splits'].get(
      'eval', {}).get('num_rows'):
    n = meta['splits']['train']['num_documents']
    raise UserInputError(
        f'--eval_fraction={settings["eval_fraction"]} held out none of the {n} '
        'documents, so there would be no evaluation split: raise it (to '
        f'{min(3 / max(n, 1), 0.5):.3g} or more for about 3 documents) or set '
        'it to 0')
  return meta


def _parser() -> argparse.ArgumentParser:
  # argparse, not absl flags: flags defined at import would land in the
  # global FLAGS of every program that imports `load_prepared`.
  p = argparse.ArgumentParser(
      prog='python -m bert_jax.data.pretrain.prepare', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--corpus', default='builtin',
                 help='Corpus spec: ' + ', '.join(corpora.SPEC_FORMS))
  p.add_argument('--tokenizer', required=True, help='Tokenizer directory or '
                 'vocab file (bert_jax.text.load_tokenizer).')
  p.add_argument('--out', required=True, help='Output directory.')
  p.add_argument('--max_seq_length', type=int, default=128)
  p.add_argument('--objective', default='mlm_nsp', choices=objectives.NAMES)
  p.add_argument('--short_seq_prob', type=float, default=0.1)
  p.add_argument('--dupe_factor', type=int, default=1)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--eval_fraction', type=float, default=0.0,
                 help='Fraction of documents held out as split "eval".')
  p.add_argument('--max_examples_per_row', type=int,
                 default=DEFAULT_EXAMPLES_PER_ROW,
                 help='Pack up to this many examples into a row (1 = one '
                 'example per row, no packing).')
  p.add_argument('--unit_mb', type=float, default=4.0,
                 help='Text per work unit (file corpora), in MiB.')
  p.add_argument('--tfds_records_per_unit', type=int, default=1000)
  p.add_argument('--text_key', default='text', help='TFDS text feature.')
  p.add_argument('--data_dir', default=None, help='TFDS data_dir.')
  p.add_argument('--invalid_utf8', default='error', choices=('error', 'replace'),
                 help='Bytes that are not UTF-8: fail naming file:line, or '
                 'replace them with U+FFFD and count them.')
  p.add_argument('--max_line_bytes', type=int, default=1 << 20,
                 help='Longer lines are skipped (and counted).')
  p.add_argument('--workers', type=int, default=_cores(),
                 help='Local processes (default: this machine\'s cores).')
  p.add_argument('--runner', default='local', choices=('local', 'beam'))
  p.add_argument('--beam_options', default='',
                 help='Apache Beam pipeline options, one string, e.g. '
                 '"--runner=DataflowRunner --project=P --region=R '
                 '--temp_location=gs://B/tmp --setup_file=./setup.py".')
  p.add_argument('--quiet', action='store_true', help='No progress line.')
  return p


def _cores() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:
    return os.cpu_count() or 1


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """The command line; see the module docstring. Bad input: one line, exit 2."""
  args = _parser().parse_args(argv)
  # One tokenizer thread per process: workers are the parallelism.
  os.environ.setdefault('RAYON_NUM_THREADS', '1')
  os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
  try:
    load_tokenizer(args.tokenizer)  # Fail here, not in a worker.
    meta = prepare(
        args.corpus, args.tokenizer, args.out,
        max_seq_length=args.max_seq_length, objective=args.objective,
        short_seq_prob=args.short_seq_prob, dupe_factor=args.dupe_factor,
        seed=args.seed, eval_fraction=args.eval_fraction,
        max_examples_per_row=args.max_examples_per_row, unit_mb=args.unit_mb,
        tfds_records_per_unit=args.tfds_records_per_unit,
        text_key=args.text_key, data_dir=args.data_dir,
        invalid_utf8=args.invalid_utf8, max_line_bytes=args.max_line_bytes,
        workers=args.workers, runner=args.runner,
        beam_args=shlex.split(args.beam_options), quiet=args.quiet)
  except (UserInputError, FileNotFoundError) as e:
    print(errors.one_line(e), file=sys.stderr)
    sys.exit(errors.EXIT_USER_ERROR)
  except OSError as e:
    if e.errno != errno.ENOSPC:
      raise
    print(f'error: no space left on the device writing {args.out} ({e}); '
          'free some and run the same command again: finished units are '
          'kept, meta.json is written only when all are done', file=sys.stderr)
    sys.exit(errors.EXIT_USER_ERROR)
  print(summary(meta, args.out))
  return meta


def summary(meta: dict[str, Any], out: str) -> str:
  lines = []
  for split, info in meta['splits'].items():
    lines.append(
        f'{split}: {info["num_examples"]} examples in {info["num_rows"]} rows '
        f'from {info["num_documents"]} documents in {len(info["files"])} '
        f'shard(s), {100 * info["padding_fraction"]:.1f}% padding')
  run = meta.get('run', {})
  skipped = []
  if meta.get('long_lines'):
    skipped.append(f'{meta["long_lines"]} over-long lines skipped')
  if meta.get('replaced_bytes'):
    skipped.append(f'{meta["replaced_bytes"]} invalid UTF-8 bytes replaced')
  lines.append(
      f'wrote {out}: {meta["bytes"] / 2**20:.1f} MiB of text in '
      f'{meta["units"]} units ({run.get("units_reused", 0)} reused) in '
      f'{run.get("seconds", 0):.1f} s ({run.get("mb_per_s", 0):.2f} MiB/s, '
      + (f'{run["workers"]} worker(s), ' if run.get('workers') else '') +
      f'runner {run.get("runner")})' +
      (f'; {", ".join(skipped)}' if skipped else ''))
  return '\n'.join(lines)


if __name__ == '__main__':
  main()
