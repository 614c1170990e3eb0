r"""Pretraining config: ``get_config('size=base,objective=mlm_sop,runlocal')``.

Arguments (comma separated):
  size       tiny | mini | small | medium | base | large   (default base)
  objective  mlm | mlm_nsp | mlm_sop                       (default mlm_nsp)
  runlocal   shrink batch, steps and eval to run on a laptop CPU in minutes.

Launch commands::

  # CPU, the built-in corpus, a few minutes:
  python launch.py --config=configs/pretrain.py:size=tiny,runlocal \
      --workdir=/tmp/bert_tiny

  # One GPU host (all local GPUs data-parallel, bf16 compute):
  python launch.py --config=configs/pretrain.py:size=base,objective=mlm_nsp \
      --workdir=$HOME/runs/bert_base --config.data.corpus=/data/wiki/*.txt \
      --config.model.dtype=bfloat16

  # Cloud TPU pod slice (run on every host; FSDP over 4 chips per replica;
  # the workdir in a bucket, so a preempted VM resumes; needs .[tpu,gcs]):
  gcloud compute tpus tpu-vm ssh $TPU --worker=all --command="cd bert_jax && \
      python launch.py --config=configs/pretrain.py:size=large,objective=mlm_sop \
      --workdir=gs://$BUCKET/runs/bert_large --config.mesh.fsdp=4 \
      --config.model.dtype=bfloat16 --config.model.scan_layers=True \
      --config.data.corpus=tfds:wikipedia/20230601.en:train"

Any field can be overridden, e.g. ``--config.optim.learning_rate=5e-4``.
"""

import ml_collections

from bert_jax.data import objectives
from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg, {
      'size': common.SIZE_NAMES,
      'objective': objectives.NAMES,
      'runlocal': ()})
  size = args.get('size', 'base')
  runlocal = bool(args.get('runlocal', False))

  config = ml_collections.ConfigDict()
  config.task = 'pretraining'
  config.seed = 0                       # Params init, data order and masking.
  config.init_from = ''                 # Optional bert_jax checkpoint dir to start from.

  config.model = common.model_group(size)

  config.data = ml_collections.ConfigDict()
  d = config.data
  d.corpus = 'builtin'                  # builtin | path/glob[,..] | tfds:NAME[:SPLIT]
  d.prepared_dir = ''                   # array_record shards from bert_jax.data.prepare.
  d.max_documents = 0                   # 0 = all documents of the corpus.
  d.eval_fraction = 0.02                # Held-out documents for evaluation.
  d.tokenizer = ''                      # vocab.txt / .model / dir; '' = train one.
  d.tokenizer_kind = 'wordpiece'        # wordpiece | sentencepiece (when training).
  d.tokenizer_vocab_size = 30522        # Vocabulary size (when training).
  d.lowercase = True
  d.objective = args.get('objective', 'mlm_nsp')  # see bert_jax/data/objectives.py
  d.max_seq_length = 128                # BERT phase 1.
  d.short_seq_prob = 0.1                # Shorter targets, as the original.
  d.dupe_factor = 5                     # Passes over the corpus with new pairs.
  d.mask_rate = 0.15
  d.max_predictions_per_seq = 20
  d.whole_word_masking = False
  # Several examples per row, each attending only to itself, with its own
  # positions and [CLS] (bert_jax/data/packing.py): little padding. False =
  # one example per row, as the original.
  d.packing = True
  d.max_examples_per_row = 8            # K: NSP/SOP slots per packed row.
  d.worker_count = 0                    # grain worker processes (0 = in-process).

  config.optim = common.optim_group()

  config.train = ml_collections.ConfigDict()
  t = config.train
  t.global_batch_size = 256             # Sequences per optimizer step.
  t.grad_accum_steps = 1                # Micro-batches per step (same result, less memory).
  t.num_steps = 1_000_000
  t.log_every_steps = 100
  t.peak_tflops = 0.0                  # One device's peak TFLOP/s: logs MFU (0 = no MFU).
  t.eval_every_steps = 10_000
  t.eval_batches = 50                   # 0 = the whole held-out set.
  t.stop_after_steps = 0                # Stop early (still resumable); 0 = run to num_steps.
  t.update(common.failure_fields())     # nan_policy, nan_max_skips, force_lock.

  config.mesh = common.mesh_group()
  config.logical_axis_rules = ()        # () = bert_jax.train.sharding.DEFAULT_RULES.
  config.ckpt = common.ckpt_group()

  if runlocal:
    d.tokenizer_vocab_size = 8000
    d.dupe_factor = 2
    d.max_seq_length = 128
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 100
    t.global_batch_size = 32
    t.num_steps = 2000
    t.log_every_steps = 100
    t.eval_every_steps = 1000
    t.eval_batches = 0                  # The whole held-out set.
    d.eval_fraction = 0.05              # A larger held-out share than at scale.
    config.ckpt.every_steps = 1000
  return config
