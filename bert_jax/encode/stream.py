"""A stream of texts in, pooled vectors on disk out, in input order.

  from bert_jax.encode import load_encoder, encode_to_file
  enc = load_encoder('ckpt/minilm', max_length=128)
  encode_to_file(enc, open('corpus.txt'), 'vectors.npy', pooling='mean')

Two threads: a producer reads a window of texts, tokenizes it in one batched
Rust call and packs it into rows (``packed``), while the main thread runs the
model on the previous rows; a batch's results are read only after the next
batch is dispatched, so the device never waits on the host. Vectors of a
window are written when its last text is done; rows left over from one window
share batches with the next, and a row class (short or long rows) that a
window leaves unfinished for ``MAX_LAG`` windows is flushed padded, so at most
a few windows are held whatever the input's size.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from bert_jax.encode import packed
from bert_jax.encode.progress import Progress

WINDOW = 4096          # texts tokenized and packed together
MAX_LAG = 2            # windows a partly filled batch may wait
QUEUE_DEPTH = 8        # producer messages in flight
DEFAULT_PACK_LENGTH = 128
DEFAULT_BATCH_TOKENS = 1024  # 8 rows of 128: measured as fast as 2048, and less memory


class _Window:
  """Results of one window, filled in as its rows come back."""

  def __init__(self, n: int, dim: int, states_len: int | None):
    self.vectors = np.zeros((n, dim), np.float32)
    self.remaining = n
    self.states = self.mask = None
    if states_len is not None:
      self.states = np.zeros((n, states_len, dim), np.float32)
      self.mask = np.zeros((n, states_len), np.int8)


def _windows(texts: Iterable[Any], size: int) -> Iterator[list[Any]]:
  it = iter(texts)
  while chunk := list(itertools.islice(it, size)):
    yield chunk


class _RowClass:
  """Rows of one length waiting to fill a batch."""

  def __init__(self, length: int, num_rows: int):
    self.length = length
    self.num_rows = num_rows
    self.max_per_row = max(1, length // 2)  # [CLS] [SEP] at least
    self.rows: collections.deque = collections.deque()


class _Producer(threading.Thread):
  """Reads, tokenizes and packs; puts ('window'|'batch'|'end'|'error', ...)."""

  def __init__(self, texts, tokenizer, max_length, classes, out_q, window):
    super().__init__(daemon=True, name='encode-producer')
    self.texts, self.tok, self.max_length = texts, tokenizer, max_length
    self.classes, self.q, self.window = classes, out_q, window

  def run(self) -> None:
    try:
      for w, chunk in enumerate(_windows(self.texts, self.window)):
        toks = packed.tokenize(self.tok, chunk, self.max_length)
        lengths = np.array([len(x) for x in toks.ids], np.int32)
        self.q.put(('window', w, len(chunk), toks.truncated,
                    int(lengths.sum()), sum(1 for t in chunk if not t)))
        short = lengths <= self.classes[0].length
        for rc, which in zip(self.classes, (short, ~short)):
          idx = np.flatnonzero(which)
          for row in packed.assign_rows(lengths[idx], rc.length,
                                        rc.max_per_row):
            rc.rows.append((w, [(int(idx[j]), toks.ids[idx[j]],
                                 None if toks.types is None else
                                 toks.types[idx[j]]) for j in row]))
          while len(rc.rows) >= rc.num_rows:
            self._emit(rc)
          if rc.rows and rc.rows[0][0] <= w - MAX_LAG:
            self._emit(rc)
      for rc in self.classes:
        while rc.rows:
          self._emit(rc)
      self.q.put(('end',))
    except BaseException as e:  # pylint: disable=broad-except
      self.q.put(('error', e))

  def _emit(self, rc: _RowClass) -> None:
    rows = [rc.rows.popleft() for _ in range(min(rc.num_rows, len(rc.rows)))]
    arrays = packed.row_arrays([[(ids, types) for _, ids, types in members]
                                for _, members in rows], rc.num_rows,
                               rc.length, rc.max_per_row, self.tok.pad_id)
    # Where each text's result lies: window, index in it, row, slot, start.
    slots = np.array([(w, i, r, j, arrays['starts'][r, j], len(ids))
                      for r, (w, members) in enumerate(rows)
                      for j, (i, ids, _) in enumerate(members)], np.int64)
    self.q.put(('batch', arrays, slots.reshape(-1, 6)))


def run(encoder, texts: Iterable[Any], writer, pooling: str = 'mean',
        token_states: bool = False, pack_length: int | None = None,
        batch_tokens: int = DEFAULT_BATCH_TOKENS, window: int = WINDOW,
        devices=None, progress: Progress | None = None) -> dict[str, Any]:
  """Encodes TEXTS into WRITER (a ``writers.ShardedWriter``, or any ``write``).

  Args:
    encoder: An ``Encoder`` (its max_length truncates).
    texts: Strings, or (A, B) pairs; any iterable, read once.
    writer: Gets ``write({'vectors': [n, D], ...})`` per window, in order.
    pooling: 'cls' or 'mean'.
    token_states: Also write 'token_states' [n, max_length, D] and
      'attention_mask' [n, max_length].
    pack_length: Row length R (default min(max_length, 128)); longer texts go
      to rows of max_length.
    batch_tokens: Tokens per forward pass (rows = batch_tokens // R, rounded
      up to a multiple of the device count).
    window: Texts tokenized and packed together.
    devices: Devices for the 'data' axis (default this process's).
    progress: Told the texts done after every window.

  Returns:
    A summary: texts, tokens, truncated, empty, slots (tokens and padding),
    padding share, compiles.
  """
  max_length = encoder.max_length
  pack_length = min(pack_length or DEFAULT_PACK_LENGTH, max_length)
  fwd = packed.PackedForward.cached(encoder, pooling, token_states, devices)
  traces = fwd.trace_count
  n_dev = fwd.num_devices

  def rows_for(length):
    rows = max(1, batch_tokens // length)
    return -(-rows // n_dev) * n_dev
  classes = [_RowClass(pack_length, rows_for(pack_length))]
  classes.append(_RowClass(max_length, rows_for(max_length)))
  q: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
  producer = _Producer(texts, encoder.tokenizer, max_length, classes, q,
                       window)
  producer.start()
  dim = encoder.hidden_size
  windows: dict[int, _Window] = {}
  inflight: collections.deque = collections.deque()
  stats = collections.Counter()
  next_w = 0

  def collect(slots, out):
    pooled = np.asarray(out['pooled'])
    states = np.asarray(out['states']) if token_states else None
    for w in np.unique(slots[:, 0]):
      s = slots[slots[:, 0] == w]
      win = windows[int(w)]
      win.vectors[s[:, 1]] = pooled[s[:, 2], s[:, 3]]
      win.remaining -= len(s)
      if states is not None:
        for _, i, r, _, start, n in s:
          win.states[i, :n] = states[r, start:start + n]
          win.mask[i, :n] = 1

  def flush():
    nonlocal next_w
    while next_w in windows and windows[next_w].remaining == 0:
      win = windows.pop(next_w)
      blocks = {'vectors': win.vectors}
      if token_states:
        blocks.update(token_states=win.states, attention_mask=win.mask)
      writer.write(blocks)
      stats['texts'] += len(win.vectors)
      if progress is not None:
        progress.update(stats['texts'])
      next_w += 1

  while True:
    msg = q.get()
    if msg[0] == 'window':
      _, w, n, cut, tokens, empty = msg
      windows[w] = _Window(n, dim, max_length if token_states else None)
      stats.update(truncated=cut, tokens=tokens, empty=empty)
    elif msg[0] == 'batch':
      _, arrays, slots = msg
      stats['slots'] += arrays['input_ids'].size
      inflight.append((slots, fwd(arrays)))
      if len(inflight) > 1:
        collect(*inflight.popleft())
        flush()
    else:
      break
  # Also on an error: what was computed is written (whole shards survive).
  while inflight:
    collect(*inflight.popleft())
  flush()
  if msg[0] == 'error':
    raise msg[1]
  producer.join()
  return {'num_texts': stats['texts'], 'dim': dim, 'pooling': pooling,
          'tokens': stats['tokens'], 'truncated': stats['truncated'],
          'empty_texts': stats['empty'],
          'slots': stats['slots'],
          'padding_share': round(1 - stats['tokens'] / max(stats['slots'], 1),
                                 4),
          'compiles': fwd.trace_count - traces}
