r"""Architecture variants, pretrained at tiny size on the builtin corpus, then
fine-tuned on the builtin sentence-topic task (bert_jax/data/finetune/builtin_topics.py).

The variants are entries of experiments/sweeps/variants.py (one model field
each): baseline (original BERT) and rope. The recipe is sized for a loaded
2-core CPU (about 7-10 minutes per pretraining trial, 2 at once): tiny model
(2 layers, 128 wide), sequence 64, 800 pretraining steps (MLM accuracy
~0.12-0.17), then 600 training sentences of 6 topics, 10 epochs at one
learning rate (5e-4) for every row, random init included. The 600 dev
sentences are evaluated; they are removed from the pretraining corpus
(data.exclude_sentences, written by bert_jax/lab/study.py).

This is NOT a recipe where pretraining wins: single-seed probes on
2026-12-02 (docs/experiments.md) had the 800-step checkpoint below random
init at lr 5e-4 and 1e-4 and with 300 or 600 training sentences, and so did
the measured 3-seed result (docs/experiments.md). For one where it wins
(few labels, longer pretraining): experiments/studies/pretrain_helps.py.

  python -m bert_jax.lab.study --study experiments/studies/variants.py \
      --root runs/study --seeds 3 --workers 2
  python -m bert_jax.lab.study_report runs/study
"""

VARIANTS = 'experiments/sweeps/variants.py'
ONLY = ('baseline', 'rope')
SEEDS = 3
REFERENCE = 'baseline'

# The pretraining recipe of every variant (on configs/pretrain.py:size=tiny,runlocal).
PRETRAIN = {
    'data.max_seq_length': 64,
    'data.max_predictions_per_seq': 10,
    'train.num_steps': 800,
    'optim.warmup_steps': 50,
    'train.eval_every_steps': 400,
    'ckpt.every_steps': 400,
}

SUITE = [{
    'name': 'topics',
    'base': 'configs/finetune.py:task=local_classification,size=tiny',
    'builtin_topics': {'num_classes': 6, 'train': 600, 'dev': 600},
    'overrides': {
        'data.max_seq_length': 64,
        'train.global_batch_size': 16,
        'train.num_epochs': 10.0,
        'optim.learning_rate': 5e-4,
        'train.log_every_steps': 50,
        'train.eval_every_steps': 75,
    },
}]
