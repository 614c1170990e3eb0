"""Objective ablation: MLM alone, MLM + next-sentence, MLM + sentence-order
prediction, each with token-level and whole-word masking.

The baseline is the original BERT objective (MLM + NSP, token masking). The
sentence-pair examples are built for every objective alike, so the entries
differ only in the loss and the masking.

  python -m experiments.sweep --sweep experiments/sweeps/objectives.py --root /tmp/objectives
  python -m experiments.report --root /tmp/objectives --metric mlm_accuracy
"""

from typing import Any

BASE = 'configs/pretrain.py:size=tiny,runlocal'


def sweep() -> list[dict[str, Any]]:
  entries = []
  for objective in ('mlm', 'mlm_nsp', 'mlm_sop'):
    for wwm in (False, True):
      name = objective + ('_wwm' if wwm else '')
      if (objective, wwm) == ('mlm_nsp', False):
        name = 'baseline'
      entries.append({'name': name, 'data.objective': objective,
                      'data.whole_word_masking': wwm})
  return entries
