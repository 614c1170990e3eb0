"""Reading Hugging Face model folders: config.json and the weight files.

Weights come from ``model.safetensors`` or a pickled ``pytorch_model.bin``
(loaded with ``weights_only=True``), or sharded versions of either, and are
returned as float32 numpy arrays by their names in the file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from safetensors import safe_open

HF_CONFIG = 'config.json'
SAFETENSORS = 'model.safetensors'
TORCH_BIN = 'pytorch_model.bin'


class CheckpointMismatchError(ValueError):
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


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  try:
    with safe_open(path, framework='np') as f:
      return {k: _to_numpy_f32(f.get_tensor(k)) for k in f.keys()}
  except TypeError:
    # numpy has no bfloat16; torch reads it and widens it to float32.
    with safe_open(path, framework='pt') as f:
      return {k: _to_numpy_f32(f.get_tensor(k)) for k in f.keys()}


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
  import torch  # pylint: disable=g-import-not-at-top  (optional dependency)
  # weights_only: never unpickle arbitrary objects from a downloaded file.
  state = torch.load(path, map_location='cpu', weights_only=True)
  if not isinstance(state, dict):
    raise ValueError(f'{path} holds a {type(state).__name__}, not a state dict.')
  return {k: _to_numpy_f32(v) for k, v in state.items()}


def read_hf_weights(src: str) -> dict[str, np.ndarray]:
  """All tensors of a Hugging Face folder (safetensors preferred), float32.

  Raises:
    FileNotFoundError: naming the file names looked for.
  """
  for name, reader in ((SAFETENSORS, _read_safetensors),
                       (TORCH_BIN, _read_torch_bin)):
    path = os.path.join(src, name)
    if os.path.isfile(path):
      return reader(path)
    index = path + '.index.json'  # sharded checkpoints
    if os.path.isfile(index):
      with open(index) as f:
        shards = sorted(set(json.load(f)['weight_map'].values()))
      out = {}
      for shard in shards:
        out.update(reader(os.path.join(src, shard)))
      return out
  raise FileNotFoundError(
      f'No weights in {src!r}: expected {SAFETENSORS} or {TORCH_BIN} '
      '(or a sharded .index.json of either).')


def read_hf_config(src: str) -> dict[str, Any]:
  path = os.path.join(src, HF_CONFIG)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'{path} not found: {src!r} is not a Hugging Face model folder.')
  with open(path) as f:
    return json.load(f)
