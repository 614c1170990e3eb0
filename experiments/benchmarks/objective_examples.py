r"""How alike the objectives' pretraining examples are, measured on a corpus.

  python -m experiments.benchmarks.objective_examples --tokenizer WORKDIR/tokenizer \
      [--corpus builtin] [--max_seq_length 128] [--max_examples_per_row 8]

For each objective (bert_jax/data/pretrain/objectives.py) the examples are built as a
pretraining run builds them (`create_examples`, then `packing.pack` as with
the default ``data.packing=True``), and one line says: examples, packed rows,
examples per row, real tokens per example (the context one token can attend
to: packing keeps examples apart) and the padding left in the rows. The
objectives ablation (experiments/sweeps/objectives.py) quotes these figures.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import objectives
from bert_jax.data.pretrain import packing
from bert_jax.data.pretrain import examples as examples_lib
from bert_jax.text import load_tokenizer


def measure(token_docs, tok, objective: str, length: int, k: int, seed: int = 0
            ) -> dict[str, float]:
  ex = examples_lib.create_examples(
      token_docs, max_seq_length=length, objective=objective, seed=seed,
      cls_id=tok.cls_id, sep_id=tok.sep_id, pad_id=tok.pad_id)
  real_N = ex['attention_mask'].sum(1)
  packed = packing.pack(ex, k, seed)
  rows = len(packed['input_ids'])
  return {'examples': len(real_N), 'rows': rows,
          'examples_per_row': len(real_N) / rows,
          'tokens_per_example': float(real_N.mean()),
          'padding': float(1 - real_N.sum() / (rows * length))}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m experiments.benchmarks.objective_examples',
                                   description=__doc__.split('\n\n')[0])
  parser.add_argument('--tokenizer', required=True, help='vocab.txt / .model / tokenizer dir.')
  parser.add_argument('--corpus', default='builtin')
  parser.add_argument('--max_seq_length', type=int, default=128)
  parser.add_argument('--max_examples_per_row', type=int, default=8)
  args = parser.parse_args(argv)
  tok = load_tokenizer(args.tokenizer)
  token_docs = examples_lib.documents_to_token_docs(
      list(corpora.load_corpus(args.corpus)), tok)
  print(f'{args.corpus}, length {args.max_seq_length}, packed (K = '
        f'{args.max_examples_per_row}), one pass (dupe_factor 1):')
  print('| objective | examples | packed rows | examples/row | tokens/example | padding |')
  print('| --- | --- | --- | --- | --- | --- |')
  for name in objectives.NAMES:
    m = measure(token_docs, tok, name, args.max_seq_length, args.max_examples_per_row)
    print(f'| {name} | {m["examples"]:,} | {m["rows"]:,} | {m["examples_per_row"]:.2f} '
          f'| {m["tokens_per_example"]:.1f} | {m["padding"]:.1%} |')
  return 0


if __name__ == '__main__':
  sys.exit(main())
