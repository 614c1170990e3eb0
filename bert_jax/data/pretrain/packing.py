"""Packing: several pretraining examples in one row, without cross-talk.

Examples end where their documents (or short targets) end, so one example per
row leaves a share of every row as padding, and padding costs as much compute
as text. Packing fills rows with whole examples (Krell et al. 2021, "Efficient
Sequence Packing without Cross-contamination"): each keeps its own [CLS] ...
[SEP], its token types and its word ids; in the packed row

* ``attention_mask`` is the example's number, 1..K (0 = padding), which the
  encoder turns into a block-diagonal mask (``attention_mask_4d``), so no token
  attends outside its example;
* ``position_ids`` restart at 0 for every example;
* ``cls_positions`` [K] is where each example's [CLS] is: its NSP/SOP logits
  are read there; ``nsp_label`` [K] and ``cls_weight`` [K] (1 = a real
  example) go with them.

Rows are filled best-fit decreasing (longest example first, into the row whose
free space it fits most tightly), which leaves little padding when there are
many short examples; rows are then shuffled. MLM is unchanged: masking draws
from a row's real tokens (``bert_jax.data.pretrain.masking``).

Shapes: N examples, M rows, L length, K examples per row at most.
"""

from __future__ import annotations

import numpy as np

PACKED_FEATURES = ('input_ids', 'token_type_ids', 'attention_mask', 'word_ids',
                   'position_ids', 'nsp_label', 'cls_positions', 'cls_weight')


def assign_rows(lengths_N: np.ndarray, length: int, max_per_row: int
                ) -> list[list[int]]:
  """Best-fit decreasing: rows as lists of example indices.

  Longest first, each into the open row it fills most tightly; a row takes at
  most MAX_PER_ROW examples and LENGTH positions. Also packs `encode`'s texts.
  """
  order = np.argsort(-lengths_N, kind='stable')
  rows: list[list[int]] = []
  # free[c]: rows with exactly c free positions (and room for one more example).
  free: list[list[int]] = [[] for _ in range(length + 1)]
  space: list[int] = []
  for i in order:
    n = int(lengths_N[i])
    row = -1
    for c in range(n, length + 1):  # The tightest row that still fits.
      if free[c]:
        row = free[c].pop()
        break
    if row < 0:
      row = len(rows)
      rows.append([])
      space.append(length)
    rows[row].append(int(i))
    space[row] -= n
    if len(rows[row]) < max_per_row and space[row] > 0:
      free[space[row]].append(row)
  return rows


def pack(examples: dict[str, np.ndarray], max_per_row: int, seed: int = 0
         ) -> dict[str, np.ndarray]:
  """Packs one-example-per-row EXAMPLES (``create_examples``) into rows.

  Args:
    examples: ``input_ids``, ``token_type_ids``, ``attention_mask`` (0/1),
      ``word_ids`` [N, L] and ``nsp_label`` [N].
    max_per_row: K, the most examples in a row (each gets an NSP/SOP slot).
    seed: Order of the rows.

  Returns:
    ``PACKED_FEATURES``: the [M, L] features, ``attention_mask`` numbering the
    examples 1..K; ``nsp_label``, ``cls_positions`` and ``cls_weight`` [M, K].

  Raises:
    ValueError: If MAX_PER_ROW < 1.
  """
  if max_per_row < 1:
    raise ValueError(f'data.max_examples_per_row must be >= 1, got {max_per_row}.')
  ids_NL = examples['input_ids']
  length = ids_NL.shape[1]
  lengths_N = examples['attention_mask'].astype(bool).sum(1)
  rows = assign_rows(lengths_N, length, max_per_row)
  order = np.random.RandomState(seed).permutation(len(rows))
  rows = [rows[r] for r in order]
  m, k = len(rows), max_per_row
  # Where each example goes, as arrays: its row, its slot, its first position.
  members = np.fromiter((i for r in rows for i in r), np.int64, len(ids_NL))
  counts = np.fromiter(map(len, rows), np.int64, m)
  row_of = np.repeat(np.arange(m), counts)
  first = np.repeat(np.cumsum(counts) - counts, counts)  # row's first member
  slot_of = np.arange(len(members)) - first
  n_of = lengths_N[members].astype(np.int64)
  start_of = _exclusive_cumsum_in_rows(n_of, first)
  words_NL = examples['word_ids'][members]
  n_words = np.where((words_NL >= 0).any(1), words_NL.max(1) + 1, 0)
  # Word ids stay unique within the row, for whole-word masking.
  word_offset = _exclusive_cumsum_in_rows(n_words.astype(np.int64), first)
  out = {key: np.zeros((m, length), np.int32) for key in PACKED_FEATURES[:5]}
  out['word_ids'][:] = -1
  out['input_ids'][:] = _pad_id(examples)
  pos_L = np.arange(length)
  real = pos_L[None, :] < n_of[:, None]
  dest_r = np.broadcast_to(row_of[:, None], real.shape)[real]
  dest_c = (start_of[:, None] + pos_L[None, :])[real]
  out['input_ids'][dest_r, dest_c] = ids_NL[members][real]
  out['token_type_ids'][dest_r, dest_c] = (
      examples['token_type_ids'][members][real])
  out['attention_mask'][dest_r, dest_c] = np.broadcast_to(
      (slot_of + 1)[:, None], real.shape)[real]
  out['position_ids'][dest_r, dest_c] = np.broadcast_to(
      pos_L[None, :], real.shape)[real]
  out['word_ids'][dest_r, dest_c] = np.where(
      words_NL >= 0, words_NL + word_offset[:, None], -1)[real]
  for key in PACKED_FEATURES[5:]:
    out[key] = np.zeros((m, k), np.int32)  # int32 all: prepared shards' format
  out['nsp_label'][row_of, slot_of] = examples['nsp_label'][members]
  out['cls_positions'][row_of, slot_of] = start_of
  out['cls_weight'][row_of, slot_of] = 1
  return out


def _exclusive_cumsum_in_rows(values: np.ndarray, first: np.ndarray
                              ) -> np.ndarray:
  """For members laid out row by row (FIRST: index of each one's row's first
  member), the sum of VALUES over the earlier members of the same row."""
  total = np.cumsum(values) - values
  return total - total[first]


def _pad_id(examples: dict[str, np.ndarray]) -> int:
  """The padding id the examples were written with (0 when none pad)."""
  pad = examples['input_ids'][examples['attention_mask'] == 0]
  return int(pad[0]) if pad.size else 0
