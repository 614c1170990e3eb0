"""One work unit, start to finish: read -> split -> tokenize -> examples ->
pack -> shard, then a marker that says it is done.

`run_unit` is the function every runner calls (in process, a local process
pool, an Apache Beam pipeline), so they all write the same bytes. It is
idempotent: a unit whose marker and shards are there and match (size and
blake2b) is not redone, which is how a killed run resumes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from typing import Any

from bert_jax import storage
from bert_jax.data.pretrain import corpora
from bert_jax.data.pretrain import packing
from bert_jax.data.pretrain import shards
from bert_jax.data.pretrain import unit_examples
from bert_jax.data.pretrain import units as units_lib
from bert_jax import text

UNITS_DIR = 'units'  # Per-unit markers (and the run's arguments) live here.
_TOKENIZERS: dict[str, Any] = {}


def marker_path(out_dir: str, index: int) -> str:
  return os.path.join(out_dir, UNITS_DIR, f'{index:05d}.json')


def load_tokenizer(spec: Any) -> Any:
  """A tokenizer object, or one loaded from a path once per process."""
  if not isinstance(spec, str):
    return spec
  if spec not in _TOKENIZERS:
    _TOKENIZERS[spec] = text.load_tokenizer(spec)
  return _TOKENIZERS[spec]


def finished(out_dir: str, index: int, verify: bool = True
             ) -> dict[str, Any] | None:
  """The unit's marker if it and all its shards are complete, else None.

  Shards are checked against the marker's size, and its blake2b if VERIFY.
  """
  path = marker_path(out_dir, index)
  if not storage.exists(path):
    return None
  try:
    marker = json.loads(storage.read_text(path))
  except (json.JSONDecodeError, OSError):
    return None
  for info in marker['splits'].values():
    shard = os.path.join(out_dir, info['file'])
    if not storage.exists(shard):
      return None
    if storage._epath(shard).stat().length != info['bytes']:  # pylint: disable=protected-access
      return None
    if verify and shards.file_digest(shard) != info['blake2b']:
      return None
  return marker


def run_unit(job: dict[str, Any]) -> dict[str, Any]:
  """Prepares unit JOB['index'] of JOB['num_units'] into JOB['out_dir'].

  JOB also holds 'unit' (from `units.plan`), 'tokenizer' (a path or an
  object) and 'settings' (prepare's arguments). Returns the unit's marker:
  per split its shard file, rows, bytes, blake2b and counts.
  """
  index, out_dir, s = job['index'], job['out_dir'], job['settings']
  done = finished(out_dir, index)
  if done is not None:
    return dict(done, reused=True)
  t0 = time.perf_counter()
  tok = load_tokenizer(job['tokenizer'])
  stats: dict[str, int] = {}
  docs = list(units_lib.read_documents(
      job['unit'], stats, invalid_utf8=s['invalid_utf8'],
      max_line_bytes=s['max_line_bytes']))
  # Per unit, holding out nothing is fine: prepare checks the whole corpus.
  train_docs, eval_docs = corpora.split_documents(
      docs, s['eval_fraction'], s['seed'], field=None)
  del docs
  splits = {'train': (train_docs, s['dupe_factor'])}
  if s['eval_fraction'] > 0:
    splits['eval'] = (eval_docs, 1)
  marker = {'index': index, 'unit': job['unit'], 'stats': stats, 'splits': {},
            'counts': {}}
  with _local_staging(out_dir) as local:
    for split, (split_docs, dupes) in splits.items():
      rng = random.Random(f'{s["seed"]}/{index}/{split}')
      token_docs = unit_examples.TokenDocs(split_docs, tok)
      ex = unit_examples.create_examples(
          token_docs, max_seq_length=s['max_seq_length'],
          objective=s['objective'], short_seq_prob=s['short_seq_prob'],
          dupe_factor=dupes, rng=rng, cls_id=tok.cls_id, sep_id=tok.sep_id,
          pad_id=tok.pad_id)
      n_examples = len(ex['input_ids'])
      if s['max_examples_per_row'] > 1 and n_examples:
        ex = packing.pack(ex, s['max_examples_per_row'], rng.getrandbits(31))
      counts = {
          'documents': token_docs.num_docs, 'examples': n_examples,
          'rows': len(ex['input_ids']),
          'real_tokens': int((ex['attention_mask'] > 0).sum()),
          'positions': int(ex['attention_mask'].size)}
      marker['counts'][split] = counts
      if counts['rows']:
        marker['features'] = shards.features_of(ex)
        name = shards.shard_name(split, index, job['num_units'])
        info = shards.write_shard(ex, os.path.join(local, name))
        if local != out_dir:
          storage.copyfile(os.path.join(local, name),
                           os.path.join(out_dir, name))
        marker['splits'][split] = info
      del ex, token_docs
  marker['seconds'] = round(time.perf_counter() - t0, 3)
  _write_marker(out_dir, index, marker)
  return dict(marker, reused=False)


class _local_staging:  # pylint: disable=invalid-name
  """OUT_DIR itself when local; else a temporary folder, removed after."""

  def __init__(self, out_dir: str):
    self._out_dir, self._tmp = out_dir, None

  def __enter__(self) -> str:
    if not storage.is_uri(self._out_dir):
      return self._out_dir
    self._tmp = tempfile.mkdtemp(prefix='bert_jax_prepare_')
    return self._tmp

  def __exit__(self, *exc) -> None:
    if self._tmp:
      shutil.rmtree(self._tmp, ignore_errors=True)


def _write_marker(out_dir: str, index: int, marker: dict[str, Any]) -> None:
  path = marker_path(out_dir, index)
  if storage.is_uri(path):
    storage.write_text(path, json.dumps(marker, sort_keys=True) + '\n')
  else:
    shards.write_json_atomic(path, marker)

