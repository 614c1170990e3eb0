"""Original vs modern BERT: the three recipes of configs/pretrain.py, 3 seeds each.

  baseline     recipe=bert: post-LN, learned positions, GELU, biases, MLM +
               NSP, 15% masking, sequence 128 throughout;
  bert_2phase  the same, sequence 128 for 90% of the steps, then 512
               (bert_jax/train/phases.py);
  modern       pre-norm, GeGLU, RoPE, no biases, attention dropout 0, packed
               rows, MLM only with 30% masking.

The recipes differ in more than architecture, so their pretraining metrics
are not measured alike: ``modern`` masks 30% of the tokens and has no
sentence task, and ``bert_2phase`` is evaluated on 512-token rows (its
eval_results.json is phase 2's; phase 1's is in ``bert_2phase.seedN/phase1``).
Judge them by downstream fine-tuning of each workdir (``init_from``), not by
the MLM accuracy column alone.

  python -m bert_jax.lab.sweep --sweep experiments/sweeps/recipes.py --root /tmp/recipes
  python -m bert_jax.lab.report /tmp/recipes
"""

from typing import Any

BASE = 'configs/pretrain.py:size=tiny,runlocal'
SEEDS = 3


def sweep() -> list[dict[str, Any]]:
  return [{'name': name, 'base': f'{BASE},recipe={recipe}'}
          for name, recipe in (('baseline', 'bert'), ('bert_2phase', 'bert_2phase'),
                               ('modern', 'modern'))]
