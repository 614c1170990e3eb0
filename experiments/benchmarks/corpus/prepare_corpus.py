"""Long-document corpora of any size for `benchmark_prepare`, made offline.

No news corpus can be downloaded on the machines that run this, so the
benchmark makes one from the built-in corpus (the Python documentation that
ships with the interpreter): its documents are concatenated in groups into
long documents (`--sentences_per_doc` sentences at least, like news articles
or Wikipedia pages rather than one-paragraph docstrings), in a different
shuffled order per copy, until the file reaches `--mb`. BERT format: one
sentence a line, a blank line between documents.

    python -m experiments.benchmarks.corpus.prepare_corpus --mb 40 --out /tmp/c40.txt
"""

from __future__ import annotations

import argparse
import random

from bert_jax.data.pretrain import corpora


def make_corpus(path: str, mb: float, sentences_per_doc: int = 40,
                seed: int = 0) -> int:
  """Writes about MB MiB to PATH; returns the bytes written."""
  docs = [d for d in corpora.load_corpus('builtin') if d]
  rng = random.Random(seed)
  target, written = int(mb * 2**20), 0
  with open(path, 'w', encoding='utf-8') as f:
    while written < target:
      order = list(range(len(docs)))
      rng.shuffle(order)
      doc: list[str] = []
      for i in order:
        doc.extend(docs[i])
        if len(doc) >= sentences_per_doc:
          text = '\n'.join(doc) + '\n\n'
          f.write(text)
          written += len(text.encode())
          doc = []
          if written >= target:
            break
  return written


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--mb', type=float, required=True)
  p.add_argument('--out', required=True)
  p.add_argument('--sentences_per_doc', type=int, default=40)
  p.add_argument('--seed', type=int, default=0)
  a = p.parse_args()
  n = make_corpus(a.out, a.mb, a.sentences_per_doc, a.seed)
  print(f'wrote {a.out}: {n / 2**20:.1f} MiB')


if __name__ == '__main__':
  main()
