"""bert_jax: BERT from scratch in JAX/Flax (linen).

The public API (``bert_jax/api.py``; docs/guide.md)::

  import bert_jax
  bert = bert_jax.load_pretrained('ckpt/minilm')    # model, params, tokenizer
  encoder = bert_jax.load_encoder('ckpt/minilm')    # texts -> arrays
  bert_jax.encode_to_file(encoder, texts, 'vectors.npy')  # a stream -> disk
  bert_jax.convert_from_hf('hf_folder', 'ckpt/mine')
  bert_jax.finetune('runs/x', 'task=local_classification', {...overrides})
  bert_jax.pretrain('runs/y', 'size=tiny,runlocal', {...overrides})

These names are loaded on first use (PEP 562), so ``import bert_jax`` (and so
every ``import bert_jax.text`` ...) imports neither JAX nor the trainer.
"""

import importlib

__version__ = '0.1.0'

# Name -> the module that defines it; all of them live in bert_jax.api.
_API = ('Encoder', 'Pretrained', 'convert_from_hf', 'encode_to_file',
        'finetune', 'load_encoder', 'load_pretrained', 'make_config',
        'pretrain')
__all__ = list(_API)


def __getattr__(name):
  if name in _API:
    # importlib, not an import statement: api sits on the top layer and
    # imports the trainer, which must not load with the package itself.
    return getattr(importlib.import_module('bert_jax.api'), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(_API))
