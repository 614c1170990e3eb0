"""The in-memory encoder: a list of texts in, arrays out.

  from bert_jax.encode import load_encoder
  encoder = load_encoder('/path/to/checkpoint')   # pretrained dir or workdir
  vectors = encoder.encode(['a sentence', 'another one'])   # [2, D] float32
  encoder.encode(texts, token_states=True)   # also the per-token states
  encoder([('a question', 'its passage')])   # every array, for a few texts

``encode`` returns only what is asked: by default the pooled vectors, made by
the packed path of a corpus (``packed``, ``stream``: several texts a row,
pooled on the device), so many texts cost [N, D] of memory, not [N, L, D].
For a corpus written to disk as it goes see ``to_file.encode_to_file``.

``__call__`` returns every array. It sorts texts by length, batches them, and
pads each batch to a length bucket (a power of two, at least 8, at most
max_length) and a batch bucket (a power of two, at most batch_size), so one
call compiles the model at most a handful of times and later calls reuse
those compilations.

Shape letters: N texts, B batch, L length, D hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from bert_jax.encode import stream
from bert_jax.models.config import ModelConfig
from bert_jax.models.encoder import BertEncoder
from bert_jax import pretrained
from bert_jax.text import load_tokenizer

POOLING = ('none', 'cls', 'mean')
MIN_LENGTH_BUCKET = 8


def _next_power_of_two(n: int, minimum: int, cap: int) -> int:
  b = minimum
  while b < n:
    b *= 2
  return min(b, cap)


class Encoder:
  """A loaded checkpoint that maps texts (or pairs) to encoder outputs."""

  def __init__(self, params: dict[str, Any], config: ModelConfig, tokenizer,
               max_length: int | None = None, batch_size: int = 32):
    """See ``load_encoder``; PARAMS is the full tree (with 'bert')."""
    # RoPE and ALiBi have no table: longer inputs are the user's call.
    max_length = (config.max_position_embeddings if max_length is None
                  else int(max_length))
    config.check_length(max_length, 'max_length')
    if max_length < 3:
      raise ValueError(f'max_length={max_length} leaves no room for text '
                       '(a pair needs 3 special tokens).')
    if batch_size < 1:
      raise ValueError(f'batch_size must be >= 1, got {batch_size}.')
    if 'bert' not in params:
      raise ValueError(f'params have no "bert" encoder; top-level keys: '
                       f'{sorted(params)}.')
    self.config = config
    self.tokenizer = tokenizer
    self.max_length = max_length
    self.batch_size = batch_size
    # Token-classification and QA checkpoints have no pooler.
    self.has_pooler = 'pooler' in params['bert']
    self._model = BertEncoder(config, add_pooler=self.has_pooler)
    self._params = jax.device_put(params['bert'])
    self.trace_count = 0  # how many shapes were compiled; tests bound it
    self._forward = jax.jit(self._forward_impl)

  @property
  def hidden_size(self) -> int:
    return self.config.hidden_size

  def _forward_impl(self, params, ids_BL, types_BL, mask_BL):
    self.trace_count += 1  # Python side effect: runs once per trace
    out = self._model.apply({'params': params}, ids_BL, types_BL, mask_BL)
    keep_BL1 = (mask_BL > 0)[..., None]
    # dtype change: results leave in float32 whatever the compute dtype.
    x_BLD = jnp.where(keep_BL1, out['last_hidden_state'], 0.0).astype(
        jnp.float32)
    count_B1 = jnp.maximum(jnp.sum(keep_BL1, axis=1), 1).astype(jnp.float32)
    res = {'last_hidden_state': x_BLD, 'cls': x_BLD[:, 0],
           'mean': jnp.sum(x_BLD, axis=1) / count_B1}
    if self.has_pooler:
      res['pooler_output'] = out['pooler_output'].astype(jnp.float32)
    return res

  def _tokenize(self, texts: Sequence[Any]) -> list[Any]:
    """Encodes each text (or pair) unpadded, truncating with one warning."""
    encodings, cut = [], []
    for i, t in enumerate(texts):
      if isinstance(t, (tuple, list)):
        if len(t) != 2:
          raise ValueError(f'texts[{i}] is a {len(t)}-tuple; a pair is (A, B).')
        a, b = t
      else:
        a, b = t, None
      enc = self.tokenizer.encode(a, pair=b)
      if len(enc) > self.max_length:
        cut.append((i, len(enc) - self.max_length))
        enc = self.tokenizer.encode(a, pair=b, max_length=self.max_length)
      encodings.append(enc)
    if cut:
      shown = ', '.join(f'text {i} lost {n}' for i, n in cut[:5])
      more = f' (and {len(cut) - 5} more)' if len(cut) > 5 else ''
      logging.warning(
          '%d text(s) longer than max_length=%d tokens were truncated; %d '
          'token(s) cut in all: %s%s.', len(cut), self.max_length,
          sum(n for _, n in cut), shown, more)
    return encodings

  def __call__(self, texts: Sequence[str] | Sequence[tuple[str, str]],
               pooling: str = 'none') -> dict[str, np.ndarray]:
    """Every array for TEXTS (for many texts, ``encode`` keeps less).

    Args:
      texts: Strings, or (A, B) pairs of strings encoded as
        ``[CLS] A [SEP] B [SEP]``; an empty list gives empty arrays.
      pooling: 'none'; 'cls' (the [CLS] token's last hidden state); or 'mean'
        (the mean of the last hidden states over real tokens, specials
        included, padding excluded).

    Returns:
      ``last_hidden_state`` [N, L, D] (zero at padding), ``pooler_output``
      [N, D] (absent for checkpoints without a pooler), ``attention_mask``
      [N, L] int32, and ``pooled`` [N, D] unless pooling is 'none'. All float
      arrays are float32; L is the longest example of the call.
    """
    if pooling not in POOLING:
      raise ValueError(f'pooling={pooling!r}; choose one of {POOLING}.')
    if isinstance(texts, (str, bytes)):
      raise TypeError('texts must be a list of strings or (A, B) pairs, not '
                      'a single string; wrap it in a list.')
    texts = list(texts)
    encodings = self._tokenize(texts)
    n, d = len(encodings), self.hidden_size
    length = max((len(e) for e in encodings), default=0)
    out = {'last_hidden_state': np.zeros((n, length, d), np.float32),
           'attention_mask': np.zeros((n, length), np.int32)}
    if self.has_pooler:
      out['pooler_output'] = np.zeros((n, d), np.float32)
    if pooling != 'none':
      out['pooled'] = np.zeros((n, d), np.float32)
    # Longest first, so each batch holds similar lengths (little padding).
    order = sorted(range(n), key=lambda i: -len(encodings[i]))
    for start in range(0, n, self.batch_size):
      rows = order[start:start + self.batch_size]
      res = self._run_batch([encodings[i] for i in rows])
      for j, i in enumerate(rows):
        m = len(encodings[i])
        out['last_hidden_state'][i, :m] = res['last_hidden_state'][j, :m]
        out['attention_mask'][i, :m] = 1
        if self.has_pooler:
          out['pooler_output'][i] = res['pooler_output'][j]
        if pooling != 'none':
          out['pooled'][i] = res[pooling][j]
    return out

  def encode(self, texts: Sequence[str] | Sequence[tuple[str, str]],
             pooling: str = 'mean', token_states: bool = False,
             **stream_args) -> np.ndarray | dict[str, np.ndarray]:
    """Pooled vectors of TEXTS, and the per-token states only when asked.

    Args:
      texts: Strings, or (A, B) pairs of strings; any iterable.
      pooling: 'mean' (over the text's tokens, specials included) or 'cls'.
      token_states: Also return each token's last hidden state.
      **stream_args: ``pack_length``, ``batch_tokens``, ``window``,
        ``devices`` (see ``stream.run``).

    Returns:
      The vectors [N, D] float32, row i for text i; with token_states a dict
      of ``vectors``, ``token_states`` [N, L, D] float32 (zero at padding) and
      ``attention_mask`` [N, L] int32, L the longest text's tokens.
    """
    if pooling not in stream.packed.STREAM_POOLING:
      raise ValueError(f'pooling={pooling!r}; choose one of '
                       f'{stream.packed.STREAM_POOLING}.')
    if isinstance(texts, (str, bytes)):
      raise TypeError('texts must be a list of strings or (A, B) pairs, not '
                      'a single string; wrap it in a list.')
    if token_states:
      out = self(texts, pooling=pooling)
      return {'vectors': out['pooled'],
              'token_states': out['last_hidden_state'],
              'attention_mask': out['attention_mask']}
    texts = (tuple(t) if isinstance(t, list) else t for t in texts)
    blocks: list[np.ndarray] = []
    stream.run(self, texts, _Collect(blocks), pooling, **stream_args)
    if not blocks:
      return np.zeros((0, self.hidden_size), np.float32)
    return np.concatenate(blocks)

  def _run_batch(self, encodings: list[Any]) -> dict[str, np.ndarray]:
    longest = max(len(e) for e in encodings)
    length = _next_power_of_two(longest, MIN_LENGTH_BUCKET, self.max_length)
    rows = _next_power_of_two(len(encodings), 1, self.batch_size)
    ids = np.full((rows, length), self.tokenizer.pad_id, np.int32)
    types = np.zeros((rows, length), np.int32)
    mask = np.zeros((rows, length), np.int32)
    # Filler rows attend to their first token, so no softmax row is empty.
    mask[len(encodings):, 0] = 1
    for j, e in enumerate(encodings):
      ids[j, :len(e)] = e.input_ids
      types[j, :len(e)] = e.token_type_ids
      mask[j, :len(e)] = 1
    res = self._forward(self._params, ids, types, mask)
    return jax.tree.map(np.asarray, res)


class _Collect:
  """A ``stream.run`` writer that keeps the vectors in memory."""

  def __init__(self, blocks: list[np.ndarray]):
    self.blocks = blocks

  def write(self, blocks: dict[str, np.ndarray]) -> None:
    self.blocks.append(blocks['vectors'])


def load_encoder(checkpoint_dir: str, max_length: int | None = None,
                 batch_size: int = 32, dtype: str | None = None) -> Encoder:
  """Loads an ``Encoder`` from a pretrained directory or a training workdir.

  Args:
    checkpoint_dir: Written by ``save_pretrained``/``convert from-hf``, or a
      training workdir (its latest checkpoint is used).
    max_length: The most tokens per example (specials included); longer
      texts are truncated with a warning. Default: max_position_embeddings.
    batch_size: The most examples per forward pass.
    dtype: Computation dtype ('float32', 'bfloat16', 'float16'); default the
      checkpoint's. Outputs are float32 either way.

  Returns:
    The ``Encoder``.
  """
  params, config = pretrained.load_pretrained(checkpoint_dir)
  # Inference: no rematerialisation, and the compute dtype asked for.
  overrides = {'remat_policy': 'none'}
  if dtype is not None:
    overrides['dtype'] = dtype
  config = config.replace(**overrides)
  tokenizer = load_tokenizer(pretrained.tokenizer_dir(checkpoint_dir))
  return Encoder(params, config, tokenizer, max_length=max_length,
                 batch_size=batch_size)
