"""Objective ablation: MLM alone, MLM + next-sentence, MLM + sentence-order
prediction, each with token-level and whole-word masking.

The baseline is the original BERT objective (MLM + NSP, token masking).
Every entry packs its examples (``data.packing=True``, the default for every
objective: bert_jax/data/pretrain/packing.py), so the rows are alike where it counts
for MLM: full (0.2-2.3% padding), ~19 masked predictions a row (15% of the
real tokens, at most ``max_predictions_per_seq``=20), the same rows per step.
What still differs is how an example is cut (``bert_jax/data/pretrain/objectives.py``
says exactly how), measured on the builtin corpus at length 128 with
``python -m experiments.benchmarks.objective_examples`` (2026-12-02):

  objective  examples/pass  packed rows  examples/row  tokens/example
  mlm              2,977        2,841        1.05          121.9
  mlm_nsp          4,205        3,576        1.18          108.0
  mlm_sop          3,038        2,702        1.12          111.2

* ``mlm`` cuts one stream of all documents into single-segment rows: a row
  may span two documents (a [SEP] between them, attended across), token type
  0 only, the longest context per example;
* ``mlm_nsp`` pairs A with the text that follows or, half the time, with text
  of a random other document (token types 0/1): a random B repeats text
  of another document, so one pass over the corpus gives 41% more examples
  and 26% more rows than ``mlm`` (a fixed step count is then fewer passes
  over the same documents), with shorter contexts;
* ``mlm_sop`` pairs consecutive sentences, swapped half the time.

So a difference between them is of the whole recipe (loss, context length,
segment structure, repetition), not of the loss alone.

  python -m bert_jax.lab.sweep --sweep experiments/sweeps/objectives.py --root /tmp/objectives
  python -m bert_jax.lab.report --root /tmp/objectives --metric mlm_accuracy
"""

from typing import Any

from bert_jax.data.pretrain import objectives

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
