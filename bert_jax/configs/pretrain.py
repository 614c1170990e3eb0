r"""Pretraining config: ``get_config('size=base,objective=mlm_sop,runlocal')``.

Arguments (comma separated):
  size       tiny | mini | small | medium | base | large   (default base)
  objective  mlm | mlm_nsp | mlm_sop                       (default mlm_nsp)
  recipe     bert | bert_2phase | modern                   (default bert)
  runlocal   shrink batch, steps and eval to run on a laptop CPU in minutes.

Recipes (what each sets; any field can still be overridden):
  bert         the original BERT choices: post-LN, LayerNorm, learned
               positions (512 rows), GELU MLP, biases, dropout 0.1, MLM + NSP,
               15% masking, sequence 128 (today's defaults).
  bert_2phase  bert, then as the BERT paper and NVIDIA's recipe: sequence 128
               for 90% of train.num_steps, then 512 for the last 10%,
               continuing from phase 1's checkpoint (config.phase2;
               bert_jax/train/phases.py). Position embeddings have 512 rows
               from the start, so phase 2 only trains the rows it now uses.
  modern       the choices of recent encoders (ModernBERT, MosaicBERT):
               pre-norm, GeGLU (intermediate 8/3 x hidden, to the nearest
               multiple of 64, so the MLP keeps BERT's parameter count), RoPE,
               no biases, attention dropout 0, packed rows, MLM only with 30%
               masking (objective= still chooses another objective).

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

import math

import ml_collections

from bert_jax.data.pretrain import objectives
from bert_jax.configs import common

RECIPES = ('bert', 'bert_2phase', 'modern')


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  args = common.parse_arg(arg, {
      'size': common.SIZE_NAMES,
      'objective': objectives.NAMES,
      'recipe': RECIPES,
      'runlocal': ()})
  size = args.get('size', 'base')
  runlocal = bool(args.get('runlocal', False))

  config = ml_collections.ConfigDict()
  config.task = 'pretraining'
  config.seed = 0                       # Params init, data order and masking.
  config.init_from = ''                 # Optional bert_jax checkpoint dir to start from.
  # Evaluate init_from on the held-out documents, no training: at another
  # data.max_seq_length than it was trained at, a length-extrapolation test.
  config.eval_only = False

  config.model = common.model_group(size)

  config.data = ml_collections.ConfigDict()
  d = config.data
  d.corpus = 'builtin'                  # builtin | path/glob[,..] | tfds:NAME[:SPLIT]
  d.prepared_dir = ''                   # array_record shards from bert_jax.data.pretrain.prepare.
  d.max_documents = 0                   # 0 = all documents of the corpus.
  # A text file, one sentence a line: corpus sentences equal to one are
  # removed before anything is built (e.g. a downstream task's dev/test
  # sentences, so fine-tuning is evaluated on text pretraining never saw).
  d.exclude_sentences = ''
  d.eval_fraction = 0.02                # Held-out documents for evaluation.
  d.tokenizer = ''                      # vocab.txt / .model / dir; '' = train one.
  d.tokenizer_kind = 'wordpiece'        # wordpiece | sentencepiece (when training).
  d.tokenizer_vocab_size = 30522        # Vocabulary size (when training).
  d.lowercase = True
  d.objective = args.get('objective', 'mlm_nsp')  # see bert_jax/data/pretrain/objectives.py
  d.max_seq_length = 128                # BERT phase 1.
  d.short_seq_prob = 0.1                # Shorter targets, as the original.
  d.dupe_factor = 5                     # Passes over the corpus with new pairs.
  d.mask_rate = 0.15
  d.max_predictions_per_seq = 20
  d.whole_word_masking = False
  # Several examples per row, each attending only to itself, with its own
  # positions and [CLS] (bert_jax/data/pretrain/packing.py): little padding. False =
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

  # A second pretraining phase at another sequence length, continuing from
  # the first (bert_jax/train/phases.py): phase 1 runs (1 - fraction) x
  # train.num_steps in WORKDIR/phase1, phase 2 the rest in WORKDIR, from
  # phase 1's params with a fresh optimizer and schedule (as BERT's
  # init_checkpoint did). fraction 0 = one phase.
  config.phase2 = ml_collections.ConfigDict()
  p2 = config.phase2
  p2.fraction = 0.0
  p2.max_seq_length = 512
  p2.max_predictions_per_seq = 80       # BERT's value at 512.
  p2.global_batch_size = 0              # 0 = train.global_batch_size.
  p2.warmup_fraction = 0.1              # Of phase 2's steps.
  p2.prepared_dir = ''                  # Examples prepared at 512 ('' = build).

  recipe = args.get('recipe', 'bert')
  if recipe == 'bert_2phase':
    p2.fraction = 0.1
    config.model.max_position_embeddings = 512
  elif recipe == 'modern':
    m = config.model
    m.norm_placement = 'pre'
    m.mlp_type = 'geglu'
    # Two input projections: 8/3 x hidden keeps 4 x hidden's parameters.
    m.intermediate_size = max(64, round(8 * m.hidden_size / 3 / 64) * 64)
    m.position_embedding = 'rope'
    m.use_bias = False
    m.attention_dropout = 0.0
    d.packing = True
    d.objective = args.get('objective', 'mlm')
    d.mask_rate = 0.3
    # Room for 30% of a row's tokens (BERT's 20 is 15% of 128).
    d.max_predictions_per_seq = int(math.ceil(d.mask_rate * d.max_seq_length))

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
