"""Writes pretraining examples to array_record shards, and reads them back.

Making examples from a big corpus takes a while (tokenizing is most of it), so
a pretraining run can read them from disk instead of making them at start-up:

    python -m bert_jax.data.pretrain.prepare --corpus 'tfds:wikipedia/20230601.en' \\
        --tokenizer PATH --max_seq_length 128 --objective mlm_nsp \\
        --out /data/wiki_128_nsp [--shard_size 100000] [--eval_fraction 0.01]

The directory then holds `meta.json` and `<split>-NNNNN-of-MMMMM.array_record`
shards. Each record is one example as fixed-width little-endian int32: the
features in `meta.json`'s order, each flattened (for L = 128: input_ids,
token_type_ids, attention_mask, word_ids, nsp_label = 4 * 128 + 1 ints). The
layout needs no parser and decodes a whole shard with one `np.frombuffer`.
`load_prepared` reads a split into memory; `PreparedSource` reads records at
random from disk, for corpora that do not fit in memory. Both feed
`bert_jax.data.loader.make_loader`.
"""

import argparse
from collections.abc import Iterable, Sequence
import json
import os
from typing import Any

from array_record.python import array_record_data_source
from array_record.python import array_record_module
import numpy as np

from bert_jax import storage
from bert_jax.errors import UserInputError
from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import objectives
from bert_jax.data.pretrain import packing
from bert_jax.data.pretrain import examples as pretraining
from bert_jax.text import load_tokenizer

FORMAT = 'bert_jax.pretraining_examples/1'
META_FILE = 'meta.json'
# One record per chunk, so that a record can be read without its neighbours.
_WRITER_OPTIONS = 'group_size:1'


def prepare(corpus: str | Iterable[Sequence[str]],
            tokenizer: Any,
            out_dir: str,
            *,
            max_seq_length: int = 128,
            objective: str = 'mlm_nsp',
            short_seq_prob: float = 0.1,
            dupe_factor: int = 1,
            seed: int = 0,
            eval_fraction: float = 0.0,
            max_documents: int | None = None,
            shard_size: int = 100_000,
            max_examples_per_row: int = 0) -> dict[str, Any]:
  """Corpus -> examples -> shards in `out_dir`.

  Args:
    corpus: A corpus spec for `corpora.load_corpus`, or documents.
    tokenizer: A `bert_jax.text.Tokenizer`.
    out_dir: Created if missing; must hold no earlier `meta.json`.
    max_seq_length: L.
    objective: A name in `objectives.NAMES`.
    short_seq_prob: As in `pretraining.create_examples`.
    dupe_factor: As in `pretraining.create_examples` (train split only; eval
      is cut once).
    seed: Seed of the example maker and of the eval split.
    eval_fraction: Fraction of documents held out as split `eval` (none if 0).
    max_documents: Read at most this many documents of a spec.
    shard_size: Examples per shard file.
    max_examples_per_row: Pack up to this many examples into a row
      (`bert_jax.data.pretrain.packing`); 0 = one example per row.

  Returns:
    The metadata written to `meta.json`.
  """
  if shard_size < 1:
    raise ValueError(f'shard_size must be >= 1, got {shard_size}')
  objectives.get(objective)  # Fail before the corpus is read.
  if storage.exists(os.path.join(out_dir, META_FILE)):
    raise FileExistsError(f'{out_dir} already holds prepared examples '
                          f'({META_FILE}); choose another --out')
  if isinstance(corpus, str):
    spec, docs = corpus, corpora.load_corpus(corpus, max_documents)
  else:
    spec, docs = '<documents>', corpus
  train_docs, eval_docs = corpora.split_documents(
      docs, eval_fraction, seed, field='--eval_fraction')
  splits = {'train': (train_docs, dupe_factor)}
  if eval_docs:
    splits['eval'] = (eval_docs, 1)
  storage.makedirs(out_dir)
  meta = {
      'format': FORMAT,
      'corpus': spec,
      'max_seq_length': max_seq_length,
      'objective': objective,
      'short_seq_prob': short_seq_prob,
      'dupe_factor': dupe_factor,
      'seed': seed,
      'eval_fraction': eval_fraction,
      'max_examples_per_row': max_examples_per_row,
      'vocab_size': tokenizer.vocab_size,
      'special_ids': {name: getattr(tokenizer, name + '_id')
                      for name in ('pad', 'unk', 'cls', 'sep', 'mask')},
      'features': [],
      'splits': {},
  }
  for split, (docs, dupes) in splits.items():
    examples = pretraining.create_examples(
        pretraining.documents_to_token_docs(docs, tokenizer),
        max_seq_length=max_seq_length, objective=objective,
        short_seq_prob=short_seq_prob, dupe_factor=dupes, seed=seed,
        cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
        pad_id=tokenizer.pad_id)
    n_examples = len(examples['input_ids'])
    if max_examples_per_row:
      examples = packing.pack(examples, max_examples_per_row, seed)
    meta['features'] = [{'name': k, 'shape': list(v.shape[1:])}
                        for k, v in examples.items()]
    files = _write_shards(examples, out_dir, split, shard_size)
    meta['splits'][split] = {
        'num_documents': len(docs),
        'num_examples': n_examples,
        'num_rows': len(examples['input_ids']),
        'padding_fraction': round(pretraining.padding_fraction(examples), 4),
        'files': files,
    }
  # Last: meta.json marks the folder complete.
  storage.write_text(os.path.join(out_dir, META_FILE),
                     json.dumps(meta, indent=2) + '\n')
  return meta


def load_prepared(directory: str,
                  split: str = 'train') -> dict[str, np.ndarray]:
  """Reads a prepared split into memory: `{name: int32 array [N, ...]}`."""
  meta = read_meta(directory, split)
  records = []
  for name in meta['splits'][split]['files']:
    reader = array_record_module.ArrayRecordReader(
        storage.cached_copy(_shard_path(directory, name)))
    try:
      records.extend(reader.read_all())
    finally:
      reader.close()
  return _decode(records, meta['features'])


class PreparedSource:
  """A grain `RandomAccessDataSource` over a prepared split, read from disk.

  Records are dicts of one example's features; `take` reads many at once.
  """

  def __init__(self, directory: str, split: str = 'train'):
    self._meta = read_meta(directory, split)
    self._directory, self._split = directory, split
    # array_record reads local files only: remote shards are cached locally.
    self._source = array_record_data_source.ArrayRecordDataSource(
        [storage.cached_copy(_shard_path(directory, f))
         for f in self._meta['splits'][split]['files']])

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {k: v[0] for k, v in self.take([index]).items()}

  def take(self, indices: Sequence[int]) -> dict[str, np.ndarray]:
    records = self._source.__getitems__([int(i) for i in indices])
    return _decode(records, self._meta['features'])

  def __repr__(self) -> str:
    return (f'PreparedSource({self._directory!r}, split={self._split!r}, '
            f'num_examples={len(self)})')


def read_meta(directory: str, split: str | None = None) -> dict[str, Any]:
  """Reads and checks `meta.json`; with `split`, checks the split exists."""
  path = os.path.join(directory, META_FILE)
  if not storage.exists(path):
    raise FileNotFoundError(f'no prepared examples at {directory}: {path} is '
                            'missing (run python -m bert_jax.data.pretrain.prepare)')
  try:
    meta = json.loads(storage.read_text(path))
  except json.JSONDecodeError as e:
    raise UserInputError(f'{path}:{e.lineno}: not valid JSON ({e.msg}); '
                         'rebuild it with python -m bert_jax.data.pretrain.prepare') from e
  if meta.get('format') != FORMAT:
    raise UserInputError(f'{path} has format {meta.get("format")!r}, '
                         f'expected {FORMAT!r}')
  if split is not None:
    if split not in meta['splits']:
      raise UserInputError(f'{directory} has no split {split!r}; it has '
                           f'{sorted(meta["splits"])}')
    for name in meta['splits'][split]['files']:
      if not storage.exists(_shard_path(directory, name)):
        raise FileNotFoundError(
            f'shard {_shard_path(directory, name)} listed in {path} is missing')
  return meta


def _shard_path(directory: str, name: str) -> str:
  return os.path.join(directory, name)


def _write_shards(examples: dict[str, np.ndarray], out_dir: str, split: str,
                  shard_size: int) -> list[str]:
  """Writes examples in order, `shard_size` a file; returns the file names."""
  rows = np.concatenate(
      [v.reshape(len(v), -1) for v in examples.values()], axis=1)
  rows = rows.astype('<i4')
  num_shards = max(1, -(-len(rows) // shard_size))
  files = []
  # array_record writes local files only: a remote OUT_DIR gets them uploaded.
  with storage.local_dir_for(out_dir) as local_dir:
    for shard in range(num_shards):
      name = f'{split}-{shard:05d}-of-{num_shards:05d}.array_record'
      writer = array_record_module.ArrayRecordWriter(
          _shard_path(local_dir, name), _WRITER_OPTIONS)
      try:
        for row in rows[shard * shard_size:(shard + 1) * shard_size]:
          writer.write(row.tobytes())
      finally:
        writer.close()
      files.append(name)
  return files


def _decode(records: Sequence[bytes],
            features: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
  """Fixed-width int32 records -> `{name: array [N, *shape]}`."""
  sizes = [int(np.prod(f['shape'], dtype=np.int64)) for f in features]
  width = sum(sizes)
  flat = np.frombuffer(b''.join(records), '<i4')
  if flat.size != width * len(records):
    raise UserInputError(f'records are not {width} int32 each, as meta.json '
                         'says; the shards and meta.json do not match')
  rows = flat.reshape(len(records), width).astype(np.int32)
  out, start = {}, 0
  for feature, size in zip(features, sizes):
    out[feature['name']] = rows[:, start:start + size].reshape(
        len(records), *feature['shape'])
    start += size
  return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """The command line; see the module docstring."""
  # argparse, not absl flags: flags defined at import would land in the
  # global FLAGS of every program that imports `load_prepared`.
  parser = argparse.ArgumentParser(
      prog='python -m bert_jax.data.pretrain.prepare', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--corpus', default='builtin',
                      help='Corpus spec: ' + ', '.join(corpora.SPEC_FORMS))
  parser.add_argument('--tokenizer', required=True,
                      help='Tokenizer directory or vocab file '
                      '(bert_jax.text.load_tokenizer).')
  parser.add_argument('--out', required=True, help='Output directory.')
  parser.add_argument('--max_seq_length', type=int, default=128)
  parser.add_argument('--objective', default='mlm_nsp',
                      choices=objectives.NAMES)
  parser.add_argument('--short_seq_prob', type=float, default=0.1)
  parser.add_argument('--dupe_factor', type=int, default=1)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--eval_fraction', type=float, default=0.0)
  parser.add_argument('--max_documents', type=int, default=None)
  parser.add_argument('--shard_size', type=int, default=100_000)
  parser.add_argument('--max_examples_per_row', type=int, default=0,
                      help='Pack up to this many examples into a row '
                      '(0 = one example per row).')
  args = parser.parse_args(argv)
  tokenizer = load_tokenizer(args.tokenizer)
  meta = prepare(
      args.corpus, tokenizer, args.out, max_seq_length=args.max_seq_length,
      objective=args.objective, short_seq_prob=args.short_seq_prob,
      dupe_factor=args.dupe_factor, seed=args.seed,
      eval_fraction=args.eval_fraction, max_documents=args.max_documents,
      shard_size=args.shard_size,
      max_examples_per_row=args.max_examples_per_row)
  for split, info in meta['splits'].items():
    print(f'{split}: {info["num_examples"]} examples in {info["num_rows"]} '
          f'rows from {info["num_documents"]} documents in '
          f'{len(info["files"])} '
          f'shard(s), {100 * info["padding_fraction"]:.1f}% padding')
  print(f'wrote {args.out}')
  return meta


if __name__ == '__main__':
  main()
