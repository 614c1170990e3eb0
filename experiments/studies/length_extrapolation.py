r"""Finding 2 (docs/findings.md): train short, test long. Position encodings
trained at length 64, evaluated at 64, 128 and 256, pretraining only.

Press et al. 2022 ("Train Short, Test Long", ALiBi; Figure 1 and Table 1;
for encoders see MosaicBERT): ALiBi's loss stays close to its training-length
figure as the evaluation length grows, RoPE degrades, sinusoidal degrades
most. Learned absolute positions cannot go past their table: here the table
has 64 rows (model.max_position_embeddings=64, the training length), so the
report prints n/a at 128 and 256 rather than reading untrained rows.

Four variants x 3 seeds: tiny model, MLM only, 400 steps of batch 32 x 64.
Each checkpoint is then evaluated (eval_only, no training) on the held-out
documents of the built-in corpus (data.eval_fraction: never trained on) at
EVAL_LENGTHS, with 15% of each row's tokens masked.

  python -m bert_jax.lab.study --study experiments/studies/length_extrapolation.py \
      --root runs/length_extrapolation --seeds 3 --workers 2
  python -m bert_jax.lab.study_report runs/length_extrapolation

Meant to fit 30 min on a quiet 2-core CPU with --workers 2 (12 pretraining
runs, 30 evaluations; learned has none past 64); not yet timed.
"""

from typing import Any

BASE = 'configs/pretrain.py:size=tiny,runlocal,objective=mlm'
SEEDS = 3
SUITE = []
EVAL_LENGTHS = (64, 128, 256)
EVAL_MASK_RATE = 0.15

PRETRAIN = {
    'data.max_seq_length': 64,
    'data.max_predictions_per_seq': 10,
    'data.tokenizer_vocab_size': 4000,
    'train.num_steps': 400,
    'optim.warmup_steps': 40,
    'train.eval_every_steps': 200,
    'train.log_every_steps': 50,
    'ckpt.every_steps': 400,
}


def sweep() -> list[dict[str, Any]]:
  return [
      {'name': 'learned', 'model.position_embedding': 'learned',
       'model.max_position_embeddings': 64},
      # A fixed function: the table is only a cache, 512 rows cover 256.
      {'name': 'sinusoidal', 'model.position_embedding': 'sinusoidal',
       'model.max_position_embeddings': 512},
      {'name': 'rope', 'model.position_embedding': 'rope'},
      {'name': 'alibi', 'model.position_embedding': 'alibi'},
  ]
