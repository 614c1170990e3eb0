"""Packed inference: several texts per row, pooled inside the jitted function.

Padding costs as much compute as text, and a batch of texts sorted by length
still pads each one to a bucket. Here the texts of a window are tokenized in
one call (Rust, ``encode_words_batch``), then packed into rows of ``R`` tokens
(``pack_length``): each text keeps its own ``[CLS] ... [SEP]``, its position
ids restart at 0, and ``attention_mask`` numbers the texts of a row 1..K, which
the encoder turns into a block-diagonal mask (``attention_mask_4d``, as packed
pretraining rows), so no text sees another. Every forward pass then has the
same shape (one compile), and almost every position is a real token. Texts
longer than ``R`` go to rows of ``max_length`` tokens (a second shape, only
compiled when such a text comes).

The jitted function returns what is asked and nothing else: pooled vectors
[B, K, D] (CLS gathered at each text's start, or the masked mean per text);
the [B, R, D] states only with ``token_states``.

Shape letters: B rows, R row length, K texts per row at most, D hidden.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bert_jax.data.pretrain import packing
from bert_jax.models.encoder import BertEncoder
from bert_jax.text.base import truncate_longest_first

STREAM_POOLING = ('cls', 'mean')


@dataclasses.dataclass
class Tokens:
  """One window of texts, tokenized, truncated to max_length.

  Attributes:
    ids: Per text, int32 ids with the specials.
    types: Per text, int32 token types; None when no text is a pair.
    truncated: How many texts lost tokens to max_length.
  """
  ids: list[np.ndarray]
  types: list[np.ndarray] | None
  truncated: int


def tokenize(tokenizer, texts: Sequence[Any], max_length: int) -> Tokens:
  """Tokenizes TEXTS (strings and (A, B) pairs) in batched Rust calls."""
  cls, sep = tokenizer.cls_id, tokenizer.sep_id
  is_pair = [isinstance(t, tuple) for t in texts]
  ids: list[Any] = [None] * len(texts)
  types: list[Any] | None = [None] * len(texts) if any(is_pair) else None
  cut = 0
  pairs = [i for i, p in enumerate(is_pair) if p]
  if pairs:
    firsts = tokenizer.encode_words_batch([texts[i][0] for i in pairs])
    seconds = tokenizer.encode_words_batch([texts[i][1] for i in pairs])
    for i, (a, _), (b, _) in zip(pairs, firsts, seconds):
      keep_a, keep_b = truncate_longest_first(a, b, max_length - 3)
      cut += keep_a + keep_b < len(a) + len(b)
      ids[i] = np.array([cls, *a[:keep_a], sep, *b[:keep_b], sep], np.int32)
      t = np.zeros(keep_a + keep_b + 3, np.int32)
      t[keep_a + 2:] = 1
      types[i] = t
  singles = [i for i, p in enumerate(is_pair) if not p]
  budget = max_length - 2
  words = tokenizer.encode_words_batch([texts[i] for i in singles])
  for i, (w, _) in zip(singles, words):
    if len(w) > budget:
      cut += 1
      w = w[:budget]
    ids[i] = np.array([cls, *w, sep], np.int32)
    if types is not None:
      types[i] = np.zeros(len(ids[i]), np.int32)
  return Tokens(ids, types, int(cut))


def assign_rows(lengths_N: np.ndarray, length: int, max_per_row: int
                ) -> list[list[int]]:
  """Rows of text indices, each at most LENGTH tokens and MAX_PER_ROW texts.

  Pretraining's best-fit decreasing (`bert_jax.data.pretrain.packing`): on
  short sentences rows come out ~99.7% full, against ~93% for largest-first
  topped up with the smallest.
  """
  return packing.assign_rows(lengths_N, length, max_per_row)


def row_arrays(rows: Sequence[Sequence[tuple[np.ndarray, np.ndarray | None]]],
               num_rows: int, length: int, max_per_row: int, pad_id: int
               ) -> dict[str, np.ndarray]:
  """Model inputs [num_rows, length] for ROWS of (ids, types) texts.

  Rows past ``len(rows)`` are filler: all padding (their outputs are dropped).
  """
  ids = np.full((num_rows, length), pad_id, np.int32)
  types = np.zeros((num_rows, length), np.int32)
  seg = np.zeros((num_rows, length), np.int32)
  pos = np.zeros((num_rows, length), np.int32)
  starts = np.zeros((num_rows, max_per_row), np.int32)
  arange = np.arange(length, dtype=np.int32)
  for r, members in enumerate(rows):
    start = 0
    for j, (e_ids, e_types) in enumerate(members):
      n = len(e_ids)
      ids[r, start:start + n] = e_ids
      if e_types is not None:
        types[r, start:start + n] = e_types
      seg[r, start:start + n] = j + 1
      pos[r, start:start + n] = arange[:n]
      starts[r, j] = start
      start += n
  return {'input_ids': ids, 'token_type_ids': types, 'segment_ids': seg,
          'position_ids': pos, 'starts': starts}


class PackedForward:
  """The jitted packed forward pass of an ``Encoder``, over a device mesh.

  Rows are split over the mesh's 'data' axis (every device gets B / n rows);
  parameters are replicated. The mesh holds this process's devices only: in
  a multi-process run each process encodes its own texts (``hosts``).
  """

  def __init__(self, encoder, pooling: str, token_states: bool = False,
               devices: Sequence[jax.Device] | None = None):
    if pooling not in STREAM_POOLING:
      raise ValueError(f'pooling={pooling!r}; choose one of {STREAM_POOLING}.')
    devices = list(jax.local_devices() if devices is None else devices)
    self.mesh = Mesh(np.array(devices), ('data',))
    self.num_devices = len(devices)
    self.pooling = pooling
    self.token_states = token_states
    self.trace_count = 0
    # The pooler is not used by cls/mean pooling: leave it out of the program.
    params = {k: v for k, v in encoder._params.items() if k != 'pooler'}  # pylint: disable=protected-access
    self._model = BertEncoder(encoder.config, add_pooler=False)
    self._params = jax.device_put(
        params, NamedSharding(self.mesh, PartitionSpec()))
    self._rows = NamedSharding(self.mesh, PartitionSpec('data'))
    self._fn = jax.jit(self._impl)

  @classmethod
  def cached(cls, encoder, pooling: str, token_states: bool = False,
             devices: Sequence[jax.Device] | None = None) -> 'PackedForward':
    """The ENCODER's one for these arguments, so later calls reuse its
    compilations (and its copy of the parameters)."""
    devices = tuple(jax.local_devices() if devices is None else devices)
    cache = encoder.__dict__.setdefault('_packed_forwards', {})
    key = (pooling, token_states, devices)
    if key not in cache:
      cache[key] = cls(encoder, pooling, token_states, devices)
    return cache[key]

  def _impl(self, params, ids_BR, types_BR, seg_BR, pos_BR, starts_BK):
    self.trace_count += 1  # Python side effect: runs once per trace
    out = self._model.apply({'params': params}, ids_BR, types_BR, seg_BR,
                            pos_BR)
    # dtype change: results leave in float32 whatever the compute dtype.
    x_BRD = out['last_hidden_state'].astype(jnp.float32)
    k = starts_BK.shape[1]
    if self.pooling == 'cls':
      pooled_BKD = jnp.take_along_axis(x_BRD, starts_BK[..., None], axis=1)
    else:
      # One-hot of each token's text: a [B,R,K] x [B,R,D] contraction sums
      # each text's tokens without leaving the device (padding is text 0).
      member_BRK = (seg_BR[..., None] == jnp.arange(1, k + 1)).astype(
          jnp.float32)
      sums_BKD = jnp.einsum('brk,brd->bkd', member_BRK, x_BRD,
                            precision=jax.lax.Precision.HIGHEST)
      count_BK1 = jnp.maximum(member_BRK.sum(1), 1.0)[..., None]
      pooled_BKD = sums_BKD / count_BK1
    res = {'pooled': pooled_BKD}
    if self.token_states:
      res['states'] = x_BRD
    return res

  def __call__(self, arrays: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Dispatches one batch (asynchronously: read the result later)."""
    args = [jax.device_put(arrays[k], self._rows) for k in
            ('input_ids', 'token_type_ids', 'segment_ids', 'position_ids',
             'starts')]
    return self._fn(self._params, *args)
