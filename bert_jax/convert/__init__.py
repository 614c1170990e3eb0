"""Hugging Face checkpoint import and export.

  python -m bert_jax.convert from-hf HF_FOLDER OUT_DIR [--scan_layers]
  python -m bert_jax.convert to-hf BERT_JAX_DIR HF_FOLDER
"""

from bert_jax.convert.hf import (from_hf, hf_weights_from_params,
                                 params_from_hf, to_hf)
from bert_jax.convert.hf_files import (CheckpointMismatchError, read_hf_config,
                                       read_hf_weights)

__all__ = ['CheckpointMismatchError', 'from_hf', 'hf_weights_from_params',
           'params_from_hf', 'read_hf_config', 'read_hf_weights', 'to_hf']
