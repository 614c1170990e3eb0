"""Architecture ablation: original BERT, then each variant one at a time.

Every variant is one field of ``config.model`` (bert_jax/models/config.py),
so every entry differs from the baseline in exactly one override; the report's
delta column is then the effect of that one change.

  python -m bert_jax.lab.sweep --sweep experiments/sweeps/variants.py --root /tmp/variants
  python -m bert_jax.lab.report --root /tmp/variants
"""

from typing import Any

BASE = 'configs/pretrain.py:size=tiny,runlocal'


def sweep() -> list[dict[str, Any]]:
  return [
      {'name': 'baseline'},                                   # post-LN, LayerNorm, learned, GELU
      {'name': 'pre_ln', 'model.norm_placement': 'pre'},
      {'name': 'rmsnorm', 'model.norm_type': 'rmsnorm'},
      {'name': 'sinusoidal', 'model.position_embedding': 'sinusoidal'},
      {'name': 'rope', 'model.position_embedding': 'rope'},
      {'name': 'alibi', 'model.position_embedding': 'alibi'},
      {'name': 'geglu', 'model.mlp_type': 'geglu'},
      {'name': 'swiglu', 'model.mlp_type': 'swiglu'},
      {'name': 'no_bias', 'model.use_bias': False},
      {'name': 'untied_decoder', 'model.tie_word_embeddings': False},
  ]
