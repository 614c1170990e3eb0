"""Length buckets: pad each batch to the shortest of a few lengths that fits it.

Fine-tuning features are built at ``max_seq_length``, but most rows are much
shorter. Cutting a batch's token axis down to the smallest bucket that holds
its longest row computes on (almost) real tokens only, while the number of
distinct shapes, and so of compilations of each jitted step, stays bounded by
the number of buckets.

``config.data.length_buckets`` names them:

* ``''`` (default): automatic, multiples of 16 up to ``max_seq_length``, at
  most 8 of them (64 -> 16, 32, 48, 64; 128 -> 16, 32, ..., 128; 384 -> 48,
  96, ..., 384).
* ``'32,64,128'``: these lengths (``max_seq_length`` is always added).
* ``'off'``: every row at ``max_seq_length``, as before buckets.

Which arrays have a token axis is the task's to say (``Task.length_axes``:
name -> how many fewer entries than tokens it has, 0 for ``[B, L]``; tagging's
word arrays are ``L - 2`` long). Trimming only drops padding columns: the
rows keep their values at every real position.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

OFF = ('off', 'none', 'fixed')
AUTO_STEP = 16
AUTO_MAX_BUCKETS = 8


def auto_buckets(max_len: int) -> tuple[int, ...]:
  """Multiples of 16 (or of a larger multiple of 16) up to MAX_LEN, <= 8."""
  step = max(AUTO_STEP, -(-max_len // AUTO_MAX_BUCKETS // AUTO_STEP) * AUTO_STEP)
  return tuple(range(step, max_len, step)) + (max_len,)


def parse(spec: str, max_len: int, field: str = 'config.data.length_buckets'
          ) -> tuple[int, ...] | None:
  """SPEC (see the module docstring) -> sorted bucket lengths, or None (off).

  Raises:
    ValueError: Naming FIELD, for a value that is not a length in
      [1, MAX_LEN].
  """
  spec = str(spec or '').strip()
  if spec.lower() in OFF:
    return None
  if not spec:
    return auto_buckets(max_len)
  lengths = set()
  for part in filter(None, (p.strip() for p in spec.split(','))):
    try:
      n = int(part)
    except ValueError:
      n = 0
    if not 1 <= n <= max_len:
      raise ValueError(
          f'{field}={spec!r}: {part!r} is not a length in [1, max_seq_length='
          f'{max_len}]; give comma-separated lengths, \'\' (automatic) or '
          "'off' (fixed-length rows).")
    lengths.add(n)
  return tuple(sorted(lengths | {max_len}))


def row_lengths(mask_NL: np.ndarray) -> np.ndarray:
  """[N] one past each row's last attended position (0 for an empty row)."""
  mask_NL = np.asarray(mask_NL) > 0
  if mask_NL.ndim != 2:
    raise ValueError(f'attention_mask must be [N, L], got {mask_NL.shape}')
  last = mask_NL.shape[1] - np.argmax(mask_NL[:, ::-1], axis=1)
  return np.where(mask_NL.any(axis=1), last, 0).astype(np.int64)


def bucket_of(length: int, buckets: Sequence[int]) -> int:
  """The smallest bucket >= LENGTH (the largest if none is)."""
  i = int(np.searchsorted(np.asarray(buckets), length, side='left'))
  return int(buckets[min(i, len(buckets) - 1)])


def trim(batch: Mapping[str, np.ndarray], width: int,
         axes: Mapping[str, int]) -> dict[str, np.ndarray]:
  """BATCH with every array of AXES cut to ``width - axes[name]`` columns."""
  return {k: (v[:, :width - axes[k]] if k in axes else v)
          for k, v in batch.items()}


def pad_to(x: np.ndarray, width: int) -> np.ndarray:
  """X [B, w, ...] zero-padded along axis 1 to WIDTH (>= w)."""
  x = np.asarray(x)
  if x.shape[1] == width:
    return x
  pad = [(0, 0)] * x.ndim
  pad[1] = (0, width - x.shape[1])
  return np.pad(x, pad)


class Trimmer:
  """Cuts a batch to the bucket of its longest row, chosen from global rows.

  The bucket depends on the rows of the whole global batch, never on one
  process's slice, so every process of a multi-host run gets the same shapes.
  Picklable (grain's worker processes import it from this module).
  """

  def __init__(self, buckets: Sequence[int], lengths_N: np.ndarray,
               axes: Mapping[str, int]):
    self.buckets = tuple(int(b) for b in buckets)
    self.lengths_N = np.asarray(lengths_N)
    self.axes = dict(axes)

  def width(self, indices: np.ndarray) -> int:
    """The bucket of the rows INDICES (global row numbers)."""
    longest = int(self.lengths_N[np.asarray(indices)].max(initial=0))
    return bucket_of(longest, self.buckets)

  def __call__(self, batch: Mapping[str, np.ndarray],
               indices: np.ndarray) -> dict[str, np.ndarray]:
    return trim(batch, self.width(indices), self.axes)

  def __repr__(self) -> str:
    # Part of the loader's fingerprint: a resumed run must cut the same way.
    return f'Trimmer(buckets={list(self.buckets)}, axes={sorted(self.axes.items())})'


class LengthGroupedBatches:
  """Batch t of the training stream -> its global row indices, grouped by length.

  As Hugging Face's ``group_by_length`` (``LengthGroupedSampler``), without
  its dropped remainder: the rows are read as a stream of seeded
  permutations, one per epoch, and epoch e's batches take the stream's rows
  ``[floor(e N / G) G, floor((e+1) N / G) G)``: first the ``e N mod G`` rows
  that epoch e-1's permutation left over (too few for a batch), then epoch
  e's permutation up to its last full batch. So every row is trained on once
  per epoch (a leftover row at the start of the next epoch, as the plain
  shuffled loader's batches also run across epochs), and every batch keeps
  G rows: the shapes stay one per bucket. An epoch has ``N // G`` or one
  more batches. A row left over by epoch e-1 may come up again in epoch e
  from e's own permutation, as at the seam of the plain loader's epochs.

  Within an epoch the rows are cut into groups of GROUP_BATCHES batches, each
  group is sorted by length and cut into batches, and the batches of the
  epoch are shuffled. Batches then hold rows of similar length, so the bucket
  that fits their longest row wastes little.

  A grain random-access source (``len`` = batches in NUM_EPOCHS epochs), so
  the loader's state stays an index and a restored run reads the same
  batches. Deterministic in (lengths, G, seed, GROUP_BATCHES) only.
  """

  def __init__(self, lengths_N: np.ndarray, global_batch_size: int, seed: int,
               group_batches: int, num_epochs: int | None = None):
    self.lengths_N = np.asarray(lengths_N)
    self.N, self.G = len(self.lengths_N), int(global_batch_size)
    self.seed = int(seed)
    self.group_batches = int(group_batches)
    self.per_epoch = self.N // self.G  # Batches of an epoch: this or one more.
    if self.per_epoch < 1 or self.group_batches < 1:
      raise ValueError(
          f'{self.N} rows make no batch of {self.G} (or '
          f'group_batches={group_batches} < 1); lower the batch size.')
    # None = "forever": more epochs than any run takes, built lazily.
    self.num_epochs = num_epochs or 1_000_000
    self._cache: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return self.first_batch(self.num_epochs)

  def first_batch(self, e: int) -> int:
    """The stream index of epoch E's first batch."""
    return e * self.N // self.G

  def _permutation(self, e: int) -> np.ndarray:
    return np.random.default_rng([self.seed, e]).permutation(self.N)

  def epoch(self, e: int) -> np.ndarray:
    """[batches of epoch E, G] global row indices of epoch E."""
    if e not in self._cache:
      lo, hi = self.first_batch(e) * self.G, self.first_batch(e + 1) * self.G
      rows = self._permutation(e)[:hi - e * self.N]
      if lo < e * self.N:  # The rows epoch e-1 left over come first.
        rows = np.concatenate([self._permutation(e - 1)[lo - e * self.N:],
                               rows])
      size = self.group_batches * self.G
      groups = []
      for start in range(0, len(rows), size):
        g = rows[start:start + size]
        # Longest first within a group; stable, so ties keep the shuffle.
        groups.append(g[np.argsort(-self.lengths_N[g], kind='stable')])
      batches = np.concatenate(groups).reshape(-1, self.G)
      rng = np.random.default_rng([self.seed, e, 1])
      self._cache = {e: batches[rng.permutation(len(batches))]}
    return self._cache[e]

  def __getitem__(self, t: int) -> np.ndarray:
    t = int(t)
    e = t * self.G // self.N  # Then first_batch(e) <= t < first_batch(e + 1).
    while self.first_batch(e + 1) <= t:
      e += 1
    while self.first_batch(e) > t:
      e -= 1
    return self.epoch(e)[t - self.first_batch(e)]

  def __repr__(self) -> str:
    # remainder=carried: not the stream of the versions that dropped it, so
    # their loader states are refused rather than read differently.
    return (f'LengthGroupedBatches(G={self.G}, seed={self.seed}, '
            f'group_batches={self.group_batches}, epochs={self.num_epochs}, '
            'remainder=carried)')


def for_training(features: Mapping[str, np.ndarray],
                 buckets: Sequence[int] | None, axes: Mapping[str, int],
                 global_batch_size: int, seed: int, group_batches: int
                 ) -> tuple[Trimmer | None, LengthGroupedBatches | None]:
  """The loader's (trimmer, batch_order) for training FEATURES.

  (None, None) without BUCKETS; no grouping when GROUP_BATCHES is 0 or the
  rows do not fill one batch (batches then run across epochs).
  """
  if not buckets:
    return None, None
  lengths = row_lengths(features['attention_mask'])
  order = None
  if group_batches > 0 and len(lengths) >= global_batch_size:
    order = LengthGroupedBatches(lengths, global_batch_size, seed,
                                 group_batches)
  return Trimmer(buckets, lengths, axes), order
