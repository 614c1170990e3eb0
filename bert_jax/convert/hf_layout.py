"""How Hugging Face BERT and bert_jax correspond: configs and tensors.

Pure data and reshapes, no file I/O (that is ``hf.py``). One table, built from
the config and the set of heads, lists every tensor both ways, so import and
export cannot drift apart.

Hugging Face tensor names are used *without* the ``bert.`` prefix of the
task models (``embeddings.word_embeddings.weight``); heads keep their own names
(``cls.predictions.bias``, ``classifier.weight``).

Shape letters: D hidden, H heads, K head dim, F intermediate, V vocab,
P max positions, T token types, N labels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from bert_jax.errors import UserInputError
from bert_jax.models.config import ModelConfig

# Our head kinds (top-level param keys besides 'bert', and how they were made).
PRETRAINING = 'pretraining'  # mlm + nsp (BertForPreTraining)
MASKED_LM = 'masked_lm'  # mlm only (BertForMaskedLM)
NEXT_SENTENCE = 'next_sentence'  # nsp only (BertForNextSentencePrediction)
SEQUENCE_CLS = 'sequence_classification'
TOKEN_CLS = 'token_classification'
QUESTION_ANSWERING = 'question_answering'
ENCODER = 'encoder'  # BertModel: no head
HEAD_KINDS = (PRETRAINING, MASKED_LM, NEXT_SENTENCE, SEQUENCE_CLS, TOKEN_CLS,
              QUESTION_ANSWERING, ENCODER)

# Hugging Face class per head kind (config.json "architectures").
HF_ARCHITECTURE = {
    PRETRAINING: 'BertForPreTraining',
    MASKED_LM: 'BertForMaskedLM',
    NEXT_SENTENCE: 'BertForNextSentencePrediction',
    SEQUENCE_CLS: 'BertForSequenceClassification',
    TOKEN_CLS: 'BertForTokenClassification',
    QUESTION_ANSWERING: 'BertForQuestionAnswering',
    ENCODER: 'BertModel',
}
# Hugging Face builds these without a pooler (add_pooling_layer=False); our
# token-classification and QA models have none either.
NO_POOLER = (MASKED_LM, TOKEN_CLS, QUESTION_ANSWERING)

# Buffers that some transformers versions save; they are not weights.
IGNORED_KEYS = ('embeddings.position_ids', 'embeddings.token_type_ids')

HF_ACTIVATIONS = {
    'gelu': 'gelu', 'gelu_python': 'gelu',  # exact erf GELU
    'gelu_new': 'gelu_new', 'gelu_pytorch_tanh': 'gelu_new',  # tanh approx.
    'relu': 'relu', 'silu': 'silu', 'swish': 'silu',
}

# HF config field -> ModelConfig field, copied as they are.
_SAME_FIELDS = {
    'vocab_size': 'vocab_size',
    'hidden_size': 'hidden_size',
    'num_hidden_layers': 'num_layers',
    'num_attention_heads': 'num_heads',
    'intermediate_size': 'intermediate_size',
    'max_position_embeddings': 'max_position_embeddings',
    'type_vocab_size': 'type_vocab_size',
    'hidden_dropout_prob': 'hidden_dropout',
    'attention_probs_dropout_prob': 'attention_dropout',
    'layer_norm_eps': 'layer_norm_eps',
    'initializer_range': 'initializer_range',
    'pad_token_id': 'pad_token_id',
}
# Where an HF config omits a field, transformers uses these (BertConfig).
_HF_DEFAULTS = {
    'vocab_size': 30522, 'hidden_size': 768, 'num_hidden_layers': 12,
    'num_attention_heads': 12, 'intermediate_size': 3072,
    'max_position_embeddings': 512, 'type_vocab_size': 2,
    'hidden_dropout_prob': 0.1, 'attention_probs_dropout_prob': 0.1,
    'layer_norm_eps': 1e-12, 'initializer_range': 0.02, 'pad_token_id': 0,
}


def model_config_from_hf(hf: dict[str, Any], tie_word_embeddings: bool = True
                         ) -> ModelConfig:
  """Maps a Hugging Face BERT config.json (as a dict) to a ModelConfig.

  Raises:
    UserInputError: naming the field, for anything HF BERT allows that bert_jax
      does not build (relative positions, decoder/cross-attention, another
      model type, an unknown activation).
  """
  model_type = hf.get('model_type', 'bert')
  if model_type != 'bert':
    raise UserInputError(f'config.json model_type={model_type!r}: only "bert" '
                     'checkpoints can be converted.')
  pos = hf.get('position_embedding_type', 'absolute')
  if pos != 'absolute':
    raise UserInputError(
        f'config.json position_embedding_type={pos!r} is not supported: '
        'bert_jax implements only "absolute" (learned) BERT positions.')
  for flag in ('is_decoder', 'add_cross_attention'):
    if hf.get(flag):
      raise UserInputError(f'config.json {flag}=true is not supported: bert_jax '
                       'builds bidirectional encoders only.')
  act = hf.get('hidden_act', 'gelu')
  if act not in HF_ACTIVATIONS:
    raise UserInputError(f'config.json hidden_act={act!r} is not supported; '
                     f'choose one of {sorted(HF_ACTIVATIONS)}.')
  fields = {ours: hf.get(theirs, _HF_DEFAULTS[theirs])
            for theirs, ours in _SAME_FIELDS.items()}
  if fields['pad_token_id'] is None:
    fields['pad_token_id'] = 0
  return ModelConfig(hidden_act=HF_ACTIVATIONS[act],
                     tie_word_embeddings=tie_word_embeddings,
                     **fields).validate()


def check_exportable(config: ModelConfig) -> None:
  """Raises UserInputError naming the first field HF BERT cannot express."""
  required = {
      'norm_placement': 'post', 'norm_type': 'layernorm',
      'position_embedding': 'learned', 'mlp_type': 'gelu', 'use_bias': True,
      'bilstm_layers': 0,
  }
  for name, value in required.items():
    if getattr(config, name) != value:
      raise UserInputError(
          f'model.{name}={getattr(config, name)!r} cannot be exported to '
          f'Hugging Face BERT, which needs model.{name}={value!r}.')


def hf_config_from_model_config(config: ModelConfig, kind: str,
                                num_labels: int | None = None
                                ) -> dict[str, Any]:
  """The config.json of the Hugging Face BERT equivalent of CONFIG + KIND."""
  check_exportable(config)
  hf: dict[str, Any] = {
      'architectures': [HF_ARCHITECTURE[kind]],
      'model_type': 'bert',
      'hidden_act': config.hidden_act,
      'position_embedding_type': 'absolute',
      'tie_word_embeddings': config.tie_word_embeddings,
      # Exported tensors are float32 whatever param_dtype was (see hf.py).
      'dtype': 'float32',
  }
  hf.update({theirs: getattr(config, ours)
             for theirs, ours in _SAME_FIELDS.items()})
  if num_labels is not None:
    hf['id2label'] = {str(i): f'LABEL_{i}' for i in range(num_labels)}
    hf['label2id'] = {f'LABEL_{i}': i for i in range(num_labels)}
  return hf


@dataclasses.dataclass(frozen=True)
class Tensor:
  """One tensor in both layouts.

  Attributes:
    hf_key: Hugging Face name (encoder names without the ``bert.`` prefix).
    path: Where it lives in our params, e.g. ('bert', 'pooler', 'dense',
      'kernel').
    hf_shape: Its shape in the Hugging Face file.
    how: How the layouts differ: 'copy'; 'linear' (torch [out, in] vs flax
      [in, out]); 'qkv' ([H*K, D] vs [D, H, K]); 'qkv_bias' ([H*K] vs [H, K]);
      'attn_out' ([D, H*K] vs [H, K, D]).
  """
  hf_key: str
  path: tuple[str, ...]
  hf_shape: tuple[int, ...]
  how: str = 'copy'

  def to_ours(self, x: np.ndarray, c: ModelConfig) -> np.ndarray:
    h, k = c.num_heads, c.head_dim
    if self.how == 'linear':
      return x.T
    if self.how == 'qkv':
      return x.T.reshape(x.shape[1], h, k)
    if self.how == 'qkv_bias':
      return x.reshape(h, k)
    if self.how == 'attn_out':
      return x.T.reshape(h, k, x.shape[0])
    return x

  def to_hf(self, x: np.ndarray) -> np.ndarray:
    if self.how == 'linear':
      return x.T
    if self.how == 'qkv':
      return x.reshape(x.shape[0], -1).T
    if self.how == 'qkv_bias':
      return x.reshape(-1)
    if self.how == 'attn_out':
      return x.reshape(-1, x.shape[-1]).T
    return x


def _dense(hf_name: str, path: tuple[str, ...], n_in: int, n_out: int
           ) -> list[Tensor]:
  return [Tensor(f'{hf_name}.weight', path + ('kernel',), (n_out, n_in),
                 'linear'),
          Tensor(f'{hf_name}.bias', path + ('bias',), (n_out,))]


def _layer_norm(hf_name: str, path: tuple[str, ...], d: int) -> list[Tensor]:
  return [Tensor(f'{hf_name}.weight', path + ('norm', 'scale'), (d,)),
          Tensor(f'{hf_name}.bias', path + ('norm', 'bias'), (d,))]


def encoder_tensors(c: ModelConfig, pooler: bool) -> list[Tensor]:
  """Every tensor of the encoder, unrolled layers (``bert/layer_{i}``)."""
  d, f = c.hidden_size, c.intermediate_size
  b = ('bert',)
  emb = ('bert', 'embeddings')
  out = [
      Tensor('embeddings.word_embeddings.weight',
             emb + ('word_embeddings', 'embedding'), (c.vocab_size, d)),
      Tensor('embeddings.position_embeddings.weight',
             emb + ('position_embeddings', 'embedding'),
             (c.max_position_embeddings, d)),
      Tensor('embeddings.token_type_embeddings.weight',
             emb + ('token_type_embeddings', 'embedding'),
             (c.type_vocab_size, d)),
      *_layer_norm('embeddings.LayerNorm', emb + ('LayerNorm',), d),
  ]
  for i in range(c.num_layers):
    hf, ours = f'encoder.layer.{i}', b + (f'layer_{i}',)
    attn = ours + ('attention',)
    for name in ('query', 'key', 'value'):
      out += [Tensor(f'{hf}.attention.self.{name}.weight',
                     attn + (name, 'kernel'), (d, d), 'qkv'),
              Tensor(f'{hf}.attention.self.{name}.bias',
                     attn + (name, 'bias'), (d,), 'qkv_bias')]
    out += [Tensor(f'{hf}.attention.output.dense.weight',
                   attn + ('out', 'kernel'), (d, d), 'attn_out'),
            Tensor(f'{hf}.attention.output.dense.bias',
                   attn + ('out', 'bias'), (d,))]
    out += _layer_norm(f'{hf}.attention.output.LayerNorm',
                       ours + ('attention_norm',), d)
    out += _dense(f'{hf}.intermediate.dense', ours + ('mlp', 'wi'), d, f)
    out += _dense(f'{hf}.output.dense', ours + ('mlp', 'wo'), f, d)
    out += _layer_norm(f'{hf}.output.LayerNorm', ours + ('mlp_norm',), d)
  if pooler:
    out += _dense('pooler.dense', b + ('pooler', 'dense'), d, d)
  return out


def head_tensors(c: ModelConfig, kind: str, num_labels: int | None = None
                 ) -> list[Tensor]:
  """Every tensor of the head(s) of KIND.

  The tied MLM decoder (``cls.predictions.decoder.weight``, the word
  embeddings) and its bias (``cls.predictions.decoder.bias``, the same tensor
  as ``cls.predictions.bias``) are not listed: ``hf.py`` handles them.
  """
  d = c.hidden_size
  out: list[Tensor] = []
  if kind in (PRETRAINING, MASKED_LM):
    out += _dense('cls.predictions.transform.dense', ('mlm', 'transform'), d, d)
    out += _layer_norm('cls.predictions.transform.LayerNorm',
                       ('mlm', 'transform_norm'), d)
    out.append(Tensor('cls.predictions.bias', ('mlm', 'bias'), (c.vocab_size,)))
    if not c.tie_word_embeddings:
      out.append(Tensor('cls.predictions.decoder.weight',
                        ('mlm', 'decoder', 'kernel'), (c.vocab_size, d),
                        'linear'))
  if kind in (PRETRAINING, NEXT_SENTENCE):
    out += _dense('cls.seq_relationship', ('nsp', 'dense'), d, 2)
  if kind in (SEQUENCE_CLS, TOKEN_CLS):
    if num_labels is None:
      raise ValueError(f'num_labels is needed for a {kind} head.')
    out += _dense('classifier', ('classifier', 'dense'), d, num_labels)
  if kind == QUESTION_ANSWERING:
    out += _dense('qa_outputs', ('qa_outputs', 'dense'), d, 2)
  return out


def all_tensors(c: ModelConfig, kind: str, pooler: bool,
                num_labels: int | None = None) -> list[Tensor]:
  return encoder_tensors(c, pooler) + head_tensors(c, kind, num_labels)


def kind_of_params(params: dict[str, Any]) -> tuple[str, int | None]:
  """(head kind, num_labels or None) of a bert_jax param tree.

  A 'classifier' with a pooler is a sequence classifier, one without a pooler a
  token classifier: that is how our two models are built.

  Raises:
    UserInputError: naming top-level keys that belong to no known head.
  """
  heads = set(params) - {'bert'}
  known = {'mlm', 'nsp', 'classifier', 'qa_outputs'}
  if 'bert' not in params or heads - known or len(heads & known) > 2 or (
      len(heads) == 2 and heads != {'mlm', 'nsp'}):
    raise UserInputError(
        f'Unexpected top-level params {sorted(params)}: expected "bert" plus '
        'one of "mlm"+"nsp", "mlm", "nsp", "classifier", "qa_outputs".')
  if heads == {'mlm', 'nsp'}:
    return PRETRAINING, None
  if heads == {'mlm'}:
    return MASKED_LM, None
  if heads == {'nsp'}:
    return NEXT_SENTENCE, None
  if heads == {'qa_outputs'}:
    return QUESTION_ANSWERING, None
  if heads == {'classifier'}:
    n = int(np.shape(params['classifier']['dense']['bias'])[0])
    return (SEQUENCE_CLS if 'pooler' in params['bert'] else TOKEN_CLS), n
  return ENCODER, None
