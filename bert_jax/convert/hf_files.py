"""Reading Hugging Face model folders: config.json and the weight files.

Weights come from ``model.safetensors`` or a pickled ``pytorch_model.bin``
(loaded with ``weights_only=True``), or sharded versions of either, and are
returned as float32 numpy arrays by their names in the file.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors import safe_open

from bert_jax.data import text_files
from bert_jax.errors import InputFileNotFoundError, UserInputError

HF_CONFIG = 'config.json'
SAFETENSORS = 'model.safetensors'
TORCH_BIN = 'pytorch_model.bin'


class CheckpointMismatchError(UserInputError):
  """Tensors that do not fit the expected layout; lists every problem."""

  def __init__(self, source: str, problems: list[str]):
    self.problems = list(problems)
    super().__init__(
        f'{len(problems)} problem(s) with the tensors of {source}:\n  ' +
        '\n  '.join(problems))


def _to_numpy_f32(x: Any) -> np.ndarray:
  """torch tensor or numpy array -> numpy; floating point -> float32.

  dtype change: bf16/fp16 checkpoints are widened to our float32 param_dtype
  (lossless).
  """
  if hasattr(x, 'detach'):  # torch.Tensor
    x = x.detach().cpu()
    if x.is_floating_point():
      x = x.float()
    x = x.numpy()
  x = np.asarray(x)
  return x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x


def _unreadable(path: str, kind: str, e: BaseException) -> UserInputError:
  size = os.path.getsize(path)
  # torch's messages run to several sentences of advice; the first says it.
  detail = str(e).split('. ')[0].strip() or 'no detail'
  return UserInputError(
      f'{path}: not a readable {kind} file ({size} bytes; '
      f'{type(e).__name__}: {detail}); truncated or damaged? Download or '
      'convert it again.')


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  text_files.check_file(path, 'weights file')
  try:
    try:
      with safe_open(path, framework='np') as f:
        return {k: _to_numpy_f32(f.get_tensor(k)) for k in f.keys()}
    except TypeError:
      # numpy has no bfloat16; torch reads it and widens it to float32.
      with safe_open(path, framework='pt') as f:
        return {k: _to_numpy_f32(f.get_tensor(k)) for k in f.keys()}
  except SafetensorError as e:  # A bad header, a file cut short.
    raise _unreadable(path, 'safetensors', e) from None


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
  import torch  # pylint: disable=g-import-not-at-top  (optional dependency)
  text_files.check_file(path, 'weights file')
  try:
    # weights_only: never unpickle arbitrary objects from a downloaded file.
    state = torch.load(path, map_location='cpu', weights_only=True)
  except (RuntimeError, OSError, EOFError, KeyError, pickle.UnpicklingError
          ) as e:
    # What torch 2.13 raises on a cut or garbage file: a zip reader error,
    # EINVAL, EOF, or a pickle opcode it does not know.
    raise _unreadable(path, 'PyTorch checkpoint', e) from None
  if not isinstance(state, dict):
    raise UserInputError(f'{path} holds a {type(state).__name__}, not a '
                         'state dict.')
  return {k: _to_numpy_f32(v) for k, v in state.items()}


def _read_json(path: str, what: str) -> Any:
  try:
    return json.loads(text_files.read_text(path))
  except json.JSONDecodeError as e:
    raise UserInputError(f'{path}:{e.lineno}: not valid JSON ({e.msg}: '
                         f'column {e.colno}); expected the {what}.') from None


def read_hf_weights(src: str) -> dict[str, np.ndarray]:
  """All tensors of a Hugging Face folder (safetensors preferred), float32.

  Raises:
    InputFileNotFoundError: naming the file names looked for.
    UserInputError: naming a weights file that is cut short or damaged.
  """
  for name, reader in ((SAFETENSORS, _read_safetensors),
                       (TORCH_BIN, _read_torch_bin)):
    path = os.path.join(src, name)
    if os.path.isfile(path):
      return reader(path)
    index = path + '.index.json'  # sharded checkpoints
    if os.path.isfile(index):
      weight_map = _read_json(index, 'shard index').get('weight_map')
      if not isinstance(weight_map, dict):
        raise UserInputError(f'{index}: no "weight_map" object; expected '
                             '{"weight_map": {tensor name: shard file}}.')
      shards = sorted(set(weight_map.values()))
      out = {}
      for shard in shards:
        out.update(reader(os.path.join(src, shard)))
      return out
  raise InputFileNotFoundError(
      f'No weights in {src!r}: expected {SAFETENSORS} or {TORCH_BIN} '
      '(or a sharded .index.json of either).')


def read_hf_config(src: str) -> dict[str, Any]:
  path = os.path.join(src, HF_CONFIG)
  if not os.path.isfile(path):
    raise InputFileNotFoundError(
        f'{path} not found: {src!r} is not a Hugging Face model folder.')
  config = _read_json(path, 'Hugging Face model config')
  if not isinstance(config, dict):
    raise UserInputError(f'{path}: holds a JSON {type(config).__name__}; '
                         'expected an object of config fields.')
  return config
