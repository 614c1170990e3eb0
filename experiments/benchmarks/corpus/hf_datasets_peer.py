"""The pipeline a user would pick instead of `prepare`: Hugging Face `datasets`.

`load_dataset('text')` -> batched `map` tokenizing (the same WordPiece
vocabulary, through `tokenizers`) -> batched `map` grouping the token stream
into 128-token blocks, with `num_proc` processes, as in transformers'
`run_mlm.py` (`group_texts`). It makes neither sentence pairs nor packed rows:
less work than `prepare`. Runs in its own virtualenv (`datasets` pins an
fsspec that gcsfs here cannot share):

    python3 -m venv /tmp/venv-hf && /tmp/venv-hf/bin/pip install datasets tokenizers
    /tmp/venv-hf/bin/python experiments/benchmarks/corpus/hf_datasets_peer.py \\
        --corpus c.txt --vocab vocab.txt --num_proc 2 --cache_dir /tmp/hfc

Prints one JSON line: seconds, blocks, tokens.
"""

import argparse
import json
import os
import shutil
import time


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument('--corpus', required=True)
  p.add_argument('--vocab', required=True)
  p.add_argument('--num_proc', type=int, default=1)
  p.add_argument('--cache_dir', required=True)
  p.add_argument('--block', type=int, default=128)
  a = p.parse_args()
  os.environ.setdefault('RAYON_NUM_THREADS', '1')
  os.environ['HF_DATASETS_OFFLINE'] = '1'
  shutil.rmtree(a.cache_dir, ignore_errors=True)
  import datasets  # pylint: disable=g-import-not-at-top
  import tokenizers  # pylint: disable=g-import-not-at-top
  t0 = time.perf_counter()
  tok = tokenizers.BertWordPieceTokenizer(a.vocab, lowercase=True)
  ds = datasets.load_dataset('text', data_files=a.corpus, split='train',
                             cache_dir=a.cache_dir)
  num_proc = a.num_proc if a.num_proc > 1 else None

  def tokenize(batch):
    encs = tok.encode_batch(batch['text'], add_special_tokens=False)
    return {'input_ids': [e.ids for e in encs]}

  def group(batch):
    flat = [t for ids in batch['input_ids'] for t in ids]
    n = len(flat) // a.block * a.block
    return {'input_ids': [flat[i:i + a.block] for i in range(0, n, a.block)]}

  ds = ds.map(tokenize, batched=True, num_proc=num_proc,
              remove_columns=['text'])
  ds = ds.map(group, batched=True, num_proc=num_proc)
  seconds = time.perf_counter() - t0
  print(json.dumps({'seconds': seconds, 'blocks': len(ds),
                    'tokens': len(ds) * a.block}))
  shutil.rmtree(a.cache_dir, ignore_errors=True)


if __name__ == '__main__':
  main()
