"""The model configuration: one dataclass, one size table, validated choices.

Every architecture variant is one field whose default is the original BERT, so
that Hugging Face BERT checkpoints load and match, and an ablation is a single
override (e.g. ``norm_placement='pre'``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# name -> (num_layers, hidden_size); heads = hidden / 64, intermediate = 4 * hidden.
SIZES: dict[str, tuple[int, int]] = {
    'tiny': (2, 128),
    'mini': (4, 256),
    'small': (4, 512),
    'medium': (8, 512),
    'base': (12, 768),
    'large': (24, 1024),
}

# Field -> valid choices, checked in ModelConfig.validate().
CHOICES: dict[str, tuple[str, ...]] = {
    'hidden_act': ('gelu', 'gelu_new', 'relu', 'silu'),
    'norm_placement': ('post', 'pre'),
    'norm_type': ('layernorm', 'rmsnorm'),
    'position_embedding': ('learned', 'sinusoidal', 'rope', 'alibi'),
    'mlp_type': ('gelu', 'geglu', 'swiglu'),
    'dtype': ('float32', 'bfloat16', 'float16'),
    'param_dtype': ('float32', 'bfloat16'),
    'attention_impl': ('xla', 'cudnn'),
    'remat_policy': ('none', 'full', 'dots', 'dots_with_no_batch_dims'),
}

# Values older checkpoints' model_config.json may hold -> today's spelling.
# 'save_nothing' was the policy 'full' already is (recompute all but inputs).
_RENAMED_VALUES = {'remat_policy': {'save_nothing': 'full'}}

# Position schemes with a table of max_position_embeddings rows: longer
# sequences cannot be encoded. The others (RoPE, ALiBi) have no limit.
TABLE_POSITIONS = ('learned', 'sinusoidal')

# Fields that change how the model runs, not its parameters' shapes or
# meaning: they apply on top of a checkpoint's architecture (init_from).
RUNTIME_FIELDS = ('dtype', 'param_dtype', 'scan_layers', 'remat_policy',
                  'attention_impl', 'hidden_dropout', 'attention_dropout',
                  'bilstm_layers', 'bilstm_hidden')


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of a BERT encoder and its heads.

  Defaults are BERT-base as published (and as Hugging Face ``BertConfig``).
  """
  vocab_size: int = 30522
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  hidden_dropout: float = 0.1
  attention_dropout: float = 0.1
  layer_norm_eps: float = 1e-12
  hidden_act: str = 'gelu'  # 'gelu' is the exact erf GELU, as in BERT.
  initializer_range: float = 0.02
  pad_token_id: int = 0
  # Computation dtype; parameters are stored in param_dtype. Softmax,
  # normalisation statistics and losses stay in float32 whatever this is.
  dtype: str = 'float32'
  param_dtype: str = 'float32'
  scan_layers: bool = False  # nn.scan over layers: flat compile time in depth.
  remat_policy: str = 'none'  # 'none' = no rematerialisation.
  # jax.nn.dot_product_attention backend: 'xla' everywhere; 'cudnn' = cuDNN
  # flash attention (NVIDIA GPU, bf16/fp16 compute only).
  attention_impl: str = 'xla'
  # --- architecture variants (defaults = original BERT) ---
  norm_placement: str = 'post'
  norm_type: str = 'layernorm'
  position_embedding: str = 'learned'
  rope_base: float = 10000.0
  mlp_type: str = 'gelu'
  use_bias: bool = True
  tie_word_embeddings: bool = True  # MLM decoder shares the word embeddings.
  # BiLSTM over the encoder's outputs (0 layers = off); output width 2*hidden.
  bilstm_layers: int = 0
  bilstm_hidden: int = 256

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def position_limit(self) -> int | None:
    """The longest sequence the position scheme encodes (None = no limit)."""
    if self.position_embedding in TABLE_POSITIONS:
      return self.max_position_embeddings
    return None

  def check_length(self, length: int, what: str) -> None:
    """Raises ValueError when WHAT (e.g. 'data.max_seq_length') = LENGTH is
    longer than the position scheme can encode."""
    limit = self.position_limit
    if limit is not None and length > limit:
      raise ValueError(
          f'{what}={length} exceeds model.max_position_embeddings={limit} '
          f'({self.position_embedding} positions have one row per position; '
          'raise max_position_embeddings, or use rope/alibi positions).')

  def validate(self) -> 'ModelConfig':
    """Raises ValueError naming the field and the valid choices."""
    for name, choices in CHOICES.items():
      value = getattr(self, name)
      if name == 'dtype' and value == 'auto':
        raise ValueError("model.dtype='auto' must be resolved first "
                         '(bert_jax.models.config.resolve_auto_dtype).')
      if value not in choices:
        raise ValueError(
            f'model.{name}={value!r} is not valid; choose one of {choices}.')
    if self.hidden_size % self.num_heads:
      raise ValueError(
          f'model.hidden_size={self.hidden_size} is not divisible by '
          f'model.num_heads={self.num_heads}.')
    if self.position_embedding == 'rope' and self.head_dim % 2:
      raise ValueError(f'RoPE needs an even head_dim, got {self.head_dim}.')
    for name in ('vocab_size', 'hidden_size', 'num_layers', 'num_heads',
                 'intermediate_size', 'max_position_embeddings',
                 'type_vocab_size'):
      if getattr(self, name) <= 0:
        raise ValueError(f'model.{name} must be > 0, got {getattr(self, name)}.')
    if self.attention_impl == 'cudnn' and self.dtype == 'float32':
      raise ValueError("model.attention_impl='cudnn' needs model.dtype "
                       "bfloat16 or float16 (cuDNN flash attention).")
    if self.bilstm_layers < 0 or (self.bilstm_layers and self.bilstm_hidden <= 0):
      raise ValueError('model.bilstm_layers must be >= 0 and bilstm_hidden > 0.')
    for name in ('hidden_dropout', 'attention_dropout'):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f'model.{name} must be in [0, 1).')
    return self

  def replace(self, **kw: Any) -> 'ModelConfig':
    return dataclasses.replace(self, **kw).validate()

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> 'ModelConfig':
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise ValueError(f'Unknown model config fields {unknown}; valid: '
                       f'{sorted(names)}.')
    d = dict(d)
    for field, renamed in _RENAMED_VALUES.items():
      if d.get(field) in renamed:
        d[field] = renamed[d[field]]
    return cls(**d).validate()

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def resolve_auto_dtype(fields: dict[str, Any]) -> dict[str, Any]:
  """dtype 'auto' -> bfloat16 on GPU/TPU, float32 on CPU (params stay fp32)."""
  fields = dict(fields)
  if fields.get('dtype') == 'auto':
    # Imported here: the config module itself stays importable without jax
    # (the PyTorch side of the benchmarks reads the size table).
    import jax  # pylint: disable=g-import-not-at-top
    fields['dtype'] = ('float32' if jax.default_backend() == 'cpu'
                       else 'bfloat16')
  return fields


def config_for_size(size: str, **overrides: Any) -> ModelConfig:
  """The ModelConfig of a named BERT size, with field overrides."""
  if size not in SIZES:
    raise ValueError(f'Unknown model size {size!r}; choose one of {tuple(SIZES)}.')
  layers, hidden = SIZES[size]
  base = dict(num_layers=layers, hidden_size=hidden, num_heads=hidden // 64,
              intermediate_size=4 * hidden)
  base.update(overrides)
  return ModelConfig(**base).validate()
