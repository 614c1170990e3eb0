"""Objective ablation: MLM alone, MLM + next-sentence, MLM + sentence-order
prediction, each with token-level and whole-word masking.

The baseline is the original BERT objective (MLM + NSP, token masking). The
entries differ in their examples as well as in their losses: ``mlm`` packs
one segment per row from a stream of all documents (rows are full, no
sentence head), ``mlm_nsp`` pairs A with the following text or, half the
time, text of another document, and ``mlm_sop`` pairs consecutive sentences,
swapped half the time (``bert_jax/data/objectives.py`` says how, exactly).
So a difference between them is of the whole recipe, not of the loss alone.

  python -m experiments.sweep --sweep experiments/sweeps/objectives.py --root /tmp/objectives
  python -m experiments.report --root /tmp/objectives --metric mlm_accuracy
"""

from typing import Any

from bert_jax.data import objectives

BASE = 'configs/pretrain.py:size=tiny,runlocal'


def sweep() -> list[dict[str, Any]]:
  entries = []
  for objective in objectives.NAMES:
    for wwm in (False, True):
      name = objective + ('_wwm' if wwm else '')
      if (objective, wwm) == ('mlm_nsp', False):
        name = 'baseline'
      entries.append({'name': name, 'data.objective': objective,
                      'data.whole_word_masking': wwm})
  return entries
