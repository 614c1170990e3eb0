"""Command line: convert BERT checkpoints between Hugging Face and bert_jax.

  # A Hugging Face folder (config.json + model.safetensors or
  # pytorch_model.bin, vocab.txt) -> a bert_jax pretrained directory:
  python -m bert_jax.convert from-hf HF_DIR OUT_DIR [--scan_layers]

  # A bert_jax pretrained directory or training workdir -> a folder that
  # transformers.BertModel / BertForPreTraining / BertTokenizer load:
  python -m bert_jax.convert to-hf BERT_JAX_DIR HF_OUT_DIR
"""

from __future__ import annotations

import argparse
import os
import sys

from bert_jax import errors
from bert_jax.convert import hf


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.convert',
      description='Convert BERT checkpoints between Hugging Face folders and '
      'bert_jax checkpoint directories.',
      epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  p = sub.add_parser('from-hf', help='Hugging Face BERT folder -> bert_jax.')
  p.add_argument('src', metavar='SRC', help='Hugging Face model folder.')
  p.add_argument('dst', metavar='DST', help='bert_jax directory to write.')
  p.add_argument('--scan_layers', action='store_true',
                 help='Store the layers stacked for nn.scan.')
  p = sub.add_parser('to-hf', help='bert_jax checkpoint -> Hugging Face folder.')
  p.add_argument('src', metavar='SRC',
                 help='bert_jax pretrained directory or training workdir.')
  p.add_argument('dst', metavar='DST', help='Hugging Face folder to write.')
  return parser


def main(argv: list[str] | None = None) -> int:
  """Runs the command; a bad input prints 'error: ...' and returns 2."""
  args = build_parser().parse_args(argv)
  try:
    _convert(args)
  except errors.UserInputError as e:
    if os.environ.get(errors.TRACEBACK_ENV):
      raise
    print(errors.one_line(e), file=sys.stderr)
    return errors.EXIT_USER_ERROR
  return 0


def _convert(args: argparse.Namespace) -> None:
  if args.command == 'from-hf':
    _, config = hf.from_hf(args.src, args.dst, scan_layers=args.scan_layers)
    print(f'Wrote {args.dst}: {config.num_layers} layers, hidden '
          f'{config.hidden_size}, vocab {config.vocab_size}.')
  else:
    hf_config = hf.to_hf(args.src, args.dst)
    print(f'Wrote {args.dst}: {hf_config["architectures"][0]}.')


if __name__ == '__main__':
  sys.exit(main())
