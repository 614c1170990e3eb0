r"""Fine-tuning config: ``get_config('task=sst2,size=base,runlocal')``.

Arguments (comma separated):
  task      a GLUE task (cola sst2 mrpc qqp stsb mnli qnli rte wnli),
            conll2003, squad_v1, squad_v2, or local_classification,
            local_regression, local_ner, local_qa (files named in config.data)
  size      model size when training from random init (default base)
  runlocal  tiny batches, few steps: runs on a laptop CPU in minutes.

Launch commands::

  # From a converted Hugging Face checkpoint (python -m bert_jax.convert from-hf):
  python launch.py --config=configs/finetune.py:task=sst2 \
      --workdir=/tmp/sst2 --config.init_from=/ckpt/bert-base-uncased

  # From a pretraining workdir, on your own TSV file:
  python launch.py --config=configs/finetune.py:task=local_classification \
      --workdir=/tmp/mine --config.init_from=/tmp/bert_tiny \
      --config.data.train_file=train.tsv --config.data.eval_file=dev.tsv \
      --config.data.text_fields=sentence --config.data.label_field=label

  # Evaluate a fine-tuned checkpoint only (metrics + predictions):
  python launch.py --config=configs/finetune.py:task=sst2 --workdir=/tmp/eval \
      --config.init_from=/tmp/sst2/best --config.eval_only=True

Defaults follow the BERT paper: batch 32, 3 epochs, lr 2e-5 with 10% warmup
and linear decay, dropout 0.1, max length 128 (384 with stride 128 for SQuAD).
"""

import ml_collections

from bert_jax.tasks import registry
from bert_jax.configs import common

TASKS = registry.FINETUNE_TASKS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg, {
      'task': TASKS,
      'size': common.SIZE_NAMES,
      'runlocal': ()})
  if 'task' not in args:
    raise ValueError(f'configs/finetune.py needs task=NAME; choose one of {TASKS}.')
  task = args['task']
  runlocal = bool(args.get('runlocal', False))
  is_squad = task in registry.QA_TASKS

  config = ml_collections.ConfigDict()
  config.task = task
  config.seed = 0
  # A bert_jax checkpoint dir (convert from-hf output, pretraining workdir, or
  # a fine-tuning workdir's best/). '' = random init (a baseline; warns).
  config.init_from = ''
  config.eval_only = False              # Evaluate init_from; no training.

  # Architecture comes from init_from's model_config.json when given; these
  # fields are used for random init, and the non-architectural ones (dtype,
  # dropout, scan_layers, remat_policy, bilstm_*) always apply.
  config.model = common.model_group(args.get('size', 'base'))

  config.data = ml_collections.ConfigDict()
  d = config.data
  d.tokenizer = ''                      # Needed only without init_from.
  d.max_seq_length = 384 if is_squad else 128
  # Each batch (train and evaluation) is cut to the shortest of these token
  # lengths that fits its longest row: one compile per bucket used, compute on
  # real tokens. '' = automatic (multiples of 16 up to max_seq_length, at most
  # 8), '32,64,128' = these, 'off' = every row at max_seq_length.
  d.length_buckets = ''
  # With buckets: training batches come from groups of this many batches
  # sorted by length (as transformers' group_by_length), so a batch's rows have
  # similar lengths and its bucket wastes little; every row is still seen once
  # per epoch, batches in random order. 0 = plain shuffle.
  d.length_group_batches = 50
  d.doc_stride = 128                    # SQuAD sliding-window stride.
  d.max_query_length = 64               # SQuAD: longer questions are cut.
  d.max_answer_length = 30              # SQuAD: longest predicted span (tokens).
  d.n_best_size = 20                    # SQuAD: candidates per start/end.
  d.null_score_diff_threshold = 0.0     # SQuAD v2: predict '' above this margin.
  d.tfds_data_dir = ''                  # TFDS data_dir ('' = TFDS default).
  d.train_split = 'train'
  d.max_train_examples = 0              # 0 = all; >0 keeps the first N (debugging).
  d.max_eval_examples = 0
  # Comma-separated splits to evaluate/predict instead of the validation ones
  # ('' = validation); the first picks the best checkpoint. For a GLUE
  # submission add the test splits, e.g. 'validation,test', or for mnli
  # '...,test_matched,test_mismatched,ax' (ax: TFDS glue/ax); see
  # docs/finetuning.md.
  d.eval_splits = ''
  # Local files (local_* tasks): TSV/CSV/JSONL for classification/regression,
  # CoNLL for NER, SQuAD JSON for QA.
  d.train_file = ''
  d.eval_file = ''
  d.text_fields = 'sentence'            # One or two comma-separated columns.
  d.label_field = 'label'
  d.crf = False                         # CRF over the tagging head (Viterbi at eval).

  config.optim = common.optim_group(learning_rate=2e-5, warmup_steps=0,
                                    warmup_fraction=0.1, eps=1e-6)

  config.train = ml_collections.ConfigDict()
  t = config.train
  t.global_batch_size = 32
  t.num_epochs = 3.0                    # Steps = epochs * examples / batch ...
  t.num_steps = 0                       # ... unless this is > 0.
  t.grad_accum_steps = 1
  t.log_every_steps = 50
  t.peak_tflops = 0.0                  # One device's peak TFLOP/s: logs MFU (0 = no MFU).
  t.eval_every_steps = 0                # 0 = once per epoch (and at the end).
  # With length buckets: compile the train step for every bucket the run
  # uses in this many background threads from the start (bert_jax/train/
  # precompile.py), instead of stalling at each bucket's first batch.
  # 0 = compile each when first met.
  t.precompile_threads = 2
  t.stop_after_steps = 0
  t.update(common.failure_fields())     # nan_policy, nan_max_skips, force_lock.
  # The best checkpoint (WORKDIR/best) maximises the mean of these
  # 'split:metric' entries, e.g. 'validation_matched:accuracy,
  # validation_mismatched:accuracy' for MNLI; '' = the task's main metric on
  # its first evaluation split. A bare 'metric' means the first split.
  t.best_metric = ''
  t.best_metric_mode = ''               # max | min | '' = the task's.

  config.mesh = common.mesh_group()
  config.logical_axis_rules = ()
  config.ckpt = common.ckpt_group()
  config.ckpt.every_steps = 0           # 0 = only at the end (and the best).

  if runlocal:
    t.global_batch_size = 8
    t.num_epochs = 1.0
    t.log_every_steps = 10
    d.max_seq_length = 128 if is_squad else 64
    d.doc_stride = 32
    config.model = common.model_group(args.get('size', 'tiny'))
  return config
