"""Pure Flax linen models: the BERT encoder, its heads, and the config."""

from bert_jax.models.config import SIZES, ModelConfig, config_for_size
from bert_jax.models.encoder import BertEncoder, stack_layers, unstack_layers
from bert_jax.models.heads import (BertForPreTraining, BertForQuestionAnswering,
                                   BertForSequenceClassification,
                                   BertForTokenClassification, make_model)

__all__ = [
    'SIZES', 'ModelConfig', 'config_for_size', 'BertEncoder', 'stack_layers',
    'unstack_layers', 'BertForPreTraining', 'BertForQuestionAnswering',
    'BertForSequenceClassification', 'BertForTokenClassification', 'make_model',
]
