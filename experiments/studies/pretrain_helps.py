r"""Does pretraining on the builtin corpus help a tiny model? A probe study.

One variant (baseline: original BERT at tiny size, 2 layers, 128 wide),
pretrained longer than experiments/studies/variants.py (2,500 steps of batch
32 x 64, a 4,000-piece vocabulary: a corpus this small leaves most of an
8,000-piece table barely trained), then fine-tuned with the random-init
floor on the builtin topic task with few labels (120 training sentences of 6
topics, 20 per topic), where a from-scratch model has least to go on, at two
learning rates for every row. The 600 dev sentences are removed from the
pretraining corpus (data.exclude_sentences, written by bert_jax/lab/study.py).

  python -m bert_jax.lab.study --study experiments/studies/pretrain_helps.py \
      --root runs/pretrain_helps --seeds 3 --workers 2

The measured result is in docs/experiments.md.
"""

VARIANTS = 'experiments/sweeps/variants.py'
ONLY = ('baseline',)
SEEDS = 3
REFERENCE = 'baseline'

PRETRAIN = {
    'data.max_seq_length': 64,
    'data.max_predictions_per_seq': 10,
    'data.tokenizer_vocab_size': 4000,
    'train.num_steps': 2500,
    'optim.warmup_steps': 100,
    'train.eval_every_steps': 1250,
    'ckpt.every_steps': 1250,
}

_FEW = {'num_classes': 6, 'train': 120, 'dev': 600}
_FINETUNE = {
    'data.max_seq_length': 64,
    'train.global_batch_size': 16,
    'train.num_epochs': 20.0,
    'train.log_every_steps': 50,
    'train.eval_every_steps': 50,
}

SUITE = [
    {'name': 'topics120_lr1e-4', 'base': 'configs/finetune.py:task=local_classification,size=tiny',
     'builtin_topics': _FEW, 'overrides': {**_FINETUNE, 'optim.learning_rate': 1e-4}},
    {'name': 'topics120_lr5e-4', 'base': 'configs/finetune.py:task=local_classification,size=tiny',
     'builtin_topics': _FEW, 'overrides': {**_FINETUNE, 'optim.learning_rate': 5e-4}},
]
