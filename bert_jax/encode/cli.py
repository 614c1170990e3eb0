"""``python -m bert_jax.encode``: a corpus in, vectors out (or a few texts).

  # A corpus: one text a line -> one float32 [N, D] .npy, row i = line i.
  python -m bert_jax.encode --checkpoint DIR --input corpus.txt \\
      --output vectors.npy --pooling mean
  # A column of TSV/CSV files or a JSONL field (two for sentence pairs), a
  # glob or several inputs, a TFDS split; a folder output gets shards and
  # meta.json, and an interrupted run resumes when run again.
  python -m bert_jax.encode --checkpoint DIR --input 'data/*.jsonl' \\
      --field question,passage --output vectors/ --pooling cls
  python -m bert_jax.encode --checkpoint DIR --input tfds:imdb_reviews:test \\
      --output imdb/ --save_token_states
  # Several processes (one per host, or per GPU): the same command on each,
  # plus where process 0 listens; each encodes its own shards, one output.
  python -m bert_jax.encode ... --coordinator_address HOST0:1234 \\
      --num_processes 2 --process_id 0    # 1 on the other

  # A few texts on the command line ('A ||| B' is a pair): all arrays, .npz.
  python -m bert_jax.encode --checkpoint DIR --pooling mean \\
      --output vectors.npz 'first text' 'second text'

A bad input (a missing file, column or field, invalid UTF-8, an existing
output) prints one line, ``error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

from bert_jax import errors
from bert_jax.encode import hosts
from bert_jax.encode import inputs as inputs_lib
from bert_jax.encode import stream
from bert_jax.encode import to_file
from bert_jax.encode.encoder import POOLING, load_encoder
from bert_jax.encode.packed import STREAM_POOLING

PAIR_SEPARATOR = '|||'  # command-line texts: 'A ||| B' is the pair (A, B)


def parse_texts(texts: Sequence[str]) -> list[str] | list[tuple[str, str]]:
  """CLI texts: 'A ||| B' is the pair (A, B); all or none must be pairs."""
  parts = [t.split(PAIR_SEPARATOR) for t in texts]
  if all(len(p) == 1 for p in parts):
    return list(texts)
  bad = [t for t, p in zip(texts, parts) if len(p) != 2]
  if bad:
    raise ValueError(f'Pair mode needs every text as "A {PAIR_SEPARATOR} B" '
                     f'(exactly one separator); not so for: {bad}.')
  return [(a.strip(), b.strip()) for a, b in parts]


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.encode',
      description='Encode texts with a bert_jax checkpoint: a corpus '
      '(--input) into a .npy file or a folder of shards, or a few texts given '
      'on the command line.', epilog=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--checkpoint', required=True,
                      help='bert_jax pretrained directory or training workdir.')
  parser.add_argument('--input', nargs='+', action='extend', default=[],
                      metavar='PATH', help='Text file (one text a line), '
                      '.tsv/.csv/.jsonl (with --field), a glob, or '
                      'tfds:NAME[:SPLIT]; several are read in order.')
  parser.add_argument('--field', default=None, help='Column or field holding '
                      'the text; "A,B" for sentence pairs (TFDS default: text).')
  parser.add_argument('--output', default=None, help='With --input: OUT.npy, '
                      'or a folder (shards + meta.json). Without: a .npz file.')
  parser.add_argument('--pooling', default=None, choices=POOLING,
                      help='cls: [CLS] hidden state; mean: masked mean '
                      '(default mean with --input, none without).')
  parser.add_argument('--max_length', type=int, default=None,
                      help='Truncate longer examples (default: the model\'s '
                      'max_position_embeddings); counted in the summary.')
  parser.add_argument('--save_token_states', action='store_true',
                      help='Also write per-token states [N, max_length, D] '
                      'and the attention mask [N, max_length].')
  parser.add_argument('--shard_size', type=int,
                      default=to_file.DEFAULT_SHARD_SIZE,
                      help='Rows per shard of a folder output.')
  parser.add_argument('--overwrite', action='store_true',
                      help='Replace an existing output.')
  parser.add_argument('--quiet', action='store_true',
                      help='No progress line.')
  parser.add_argument('--pack_length', type=int, default=None,
                      help='Tokens per packed row (default min(max_length, '
                      f'{stream.DEFAULT_PACK_LENGTH})).')
  parser.add_argument('--batch_tokens', type=int,
                      default=stream.DEFAULT_BATCH_TOKENS,
                      help='Tokens per forward pass (--input).')
  parser.add_argument('--tfds_data_dir', default=None)
  parser.add_argument('--coordinator_address', default=None,
                      help='host:port of process 0: run as one of several '
                      'processes (jax.distributed); each encodes every '
                      'num_processes-th shard of the input into one output, '
                      'which all must see. Cluster environments (SLURM, '
                      'TPU pods) are detected without it.')
  parser.add_argument('--num_processes', type=int, default=None)
  parser.add_argument('--process_id', type=int, default=None)
  parser.add_argument('--batch_size', type=int, default=32,
                      help='Texts per forward pass (command-line texts).')
  parser.add_argument('--dtype', default=None,
                      choices=('float32', 'bfloat16', 'float16'))
  parser.add_argument('texts', nargs='*', metavar='TEXT')
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command; a bad input prints 'error: ...' and returns 2.

  With several processes, one that stops because another failed or was lost
  prints 'error: ...' and returns ``hosts.EXIT_PEER_FAILED`` (75); when the
  other was lost (its collective broke) it exits the process with that status
  at once, skipping jax.distributed's shutdown (which would wait for the lost
  process and then abort).
  """
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.input and args.texts:
    parser.error('give texts with --input or on the command line, not both.')
  if not args.input and not args.texts:
    parser.error('give --input PATH (a corpus) or texts on the command line.')
  try:
    if args.input:
      return _encode_corpus(args)
    return _encode_texts(args)
  except (errors.UserInputError, FileNotFoundError) as e:
    if os.environ.get(errors.TRACEBACK_ENV):
      raise
    print(errors.one_line(e), file=sys.stderr)
    return errors.EXIT_USER_ERROR
  except hosts.PeerError as e:
    print(f'error: {e} The complete shards are kept: run the same command in '
          'every process again to resume.', file=sys.stderr)
    if isinstance(e, hosts.PeerLost):
      # jax.distributed's shutdown at exit would wait for the lost process
      # until the heartbeat timeout and then abort (status 134, a C++ stack
      # trace): end here instead, with our status.
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(hosts.EXIT_PEER_FAILED)  # pylint: disable=protected-access
    return hosts.EXIT_PEER_FAILED


def _load(args):
  if not os.path.isdir(args.checkpoint):
    raise errors.InputFileNotFoundError(
        f'--checkpoint={args.checkpoint}: no such folder; expected a bert_jax '
        'checkpoint (python -m bert_jax.convert from-hf writes one).')
  try:
    return load_encoder(args.checkpoint, max_length=args.max_length,
                        batch_size=args.batch_size, dtype=args.dtype)
  except ValueError as e:  # e.g. max_length beyond the position table
    raise errors.UserInputError(f'--max_length={args.max_length}: {e}') from e


def _encode_corpus(args) -> int:
  start = time.perf_counter()
  pooling = args.pooling or 'mean'
  if pooling not in STREAM_POOLING:
    raise errors.UserInputError(
        f'--pooling={pooling}: with --input choose one of {STREAM_POOLING} '
        '(--save_token_states adds the per-token states).')
  if not args.output:
    raise errors.UserInputError('--output is required with --input: OUT.npy '
                                'or a folder.')
  sources = inputs_lib.resolve(args.input)
  fields = inputs_lib.parse_fields(args.field)
  inputs_lib.check_fields(sources, fields)
  hosts.initialize(args.coordinator_address, args.num_processes,
                   args.process_id)
  with hosts.until('bert_jax.encode: checkpoint loaded'):
    encoder = _load(args)
    texts = inputs_lib.iter_texts(sources, fields, args.tfds_data_dir)
    total = None if args.quiet else inputs_lib.count_texts(sources)
  run_args = {'checkpoint': os.path.abspath(args.checkpoint),
              'input': list(args.input), 'field': args.field}
  summary = to_file.encode_to_file(
      encoder, texts, args.output, pooling,
      token_states=args.save_token_states, shard_size=args.shard_size,
      overwrite=args.overwrite, quiet=args.quiet, total=total,
      run_args=run_args, pack_length=args.pack_length,
      batch_tokens=args.batch_tokens)
  seconds = time.perf_counter() - start
  n = summary['num_texts']
  done = summary['encoded']
  if jax.process_index() != 0:
    print(f'Process {jax.process_index()}/{summary["processes"]}: encoded '
          f'{done:,} texts of {args.output} in {seconds:.1f} s.')
    return 0
  resumed = (f' (resumed after {summary["resumed_from"]:,})'
             if summary['resumed_from'] else '')
  if summary['processes'] > 1:
    resumed += f' by {summary["processes"]} processes'
  print(f'Wrote {args.output}: {n:,} texts x {summary["dim"]} float32 '
        f'({pooling} pooling){resumed}; {summary["tokens"]:,} tokens, '
        f'{summary["truncated"]:,} truncated to max_length='
        f'{encoder.max_length}, {summary["empty_texts"]:,} empty; '
        f'{done / max(seconds, 1e-9):,.1f} texts/s over {seconds:.1f} s '
        '(load and compile included).')
  return 0


def _encode_texts(args) -> int:
  encoder = _load(args)
  try:
    texts = parse_texts(args.texts)
  except ValueError as e:
    raise errors.UserInputError(str(e)) from e
  out = encoder(texts, pooling=args.pooling or 'none')
  for name, x in out.items():
    print(f'{name}: shape {x.shape} dtype {x.dtype}')
  vectors = out.get('pooled', out['last_hidden_state'][:, 0])
  label = 'pooled' if 'pooled' in out else 'last_hidden_state[:, 0]'
  for i, text in enumerate(texts):
    values = np.array2string(vectors[i, :4], precision=4, separator=', ')
    print(f'[{i}] {int(out["attention_mask"][i].sum())} tokens  '
          f'{label}[:4]={values}  {text!r}')
  if args.output:
    np.savez(args.output, **out)
    print(f'Wrote {args.output} ({", ".join(sorted(out))}).')
  return 0
