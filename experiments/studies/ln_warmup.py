r"""Finding 1 (docs/findings.md): layer-norm placement x learning-rate warm-up
x two learning rates, pretraining only.

Xiong et al. 2020 ("On Layer Normalization in the Transformer Architecture",
Figure 3 and section 4): Post-LN needs warm-up; without it, at a learning rate
where Pre-LN trains well, Post-LN trains markedly worse or diverges, and Pre-LN
without warm-up matches Post-LN with it.

Grid: model.norm_placement {post, pre} x warm-up {30 steps, none} x
optim.learning_rate {5e-4, 2e-3}: 8 cells, 3 seeds each, tiny model
(2 layers, 128 wide), MLM only, sequence 64, 300 steps of batch 32 with linear
decay, held-out MLM loss every 100 steps on the built-in corpus's held-out
documents (data.eval_fraction; never trained on). "none" sets both
optim.warmup_steps and optim.warmup_fraction to 0, so no fallback warm-up
applies (tests/lab/test_findings_studies.py checks the logged learning rate).

  python -m bert_jax.lab.study --study experiments/studies/ln_warmup.py \
      --root runs/ln_warmup --seeds 3 --workers 2
  python -m bert_jax.lab.study_report runs/ln_warmup

Meant to fit 30 min on a quiet 2-core CPU with --workers 2 (24 runs, an
estimated 1-2 min each); not yet timed.
"""

from typing import Any

BASE = 'configs/pretrain.py:size=tiny,runlocal,objective=mlm'
SEEDS = 3
SUITE = []                                  # Pretraining only: held-out MLM loss.
WARMUP_STEPS = 30                           # 10% of the 300 steps (BERT: 10k of 1M).
LEARNING_RATES = (5e-4, 2e-3)

PRETRAIN = {
    'data.max_seq_length': 64,
    'data.max_predictions_per_seq': 10,     # 15% of 64.
    'data.tokenizer_vocab_size': 4000,
    'train.num_steps': 300,
    'train.eval_every_steps': 100,
    'train.log_every_steps': 25,
    'ckpt.every_steps': 300,
    'optim.warmup_fraction': 0.0,
}


def sweep() -> list[dict[str, Any]]:
  out = []
  for lr in LEARNING_RATES:
    for norm in ('post', 'pre'):
      for warm, steps in (('warmup', WARMUP_STEPS), ('nowarmup', 0)):
        out.append({'name': f'{norm}_{warm}_lr{lr:g}', 'model.norm_placement': norm,
                    'optim.warmup_steps': steps, 'optim.learning_rate': lr})
  return out
