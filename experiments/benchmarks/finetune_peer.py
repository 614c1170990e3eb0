r"""The peer side of experiments/benchmarks/benchmark_finetune.py: a plain transformers loop.

Written as a user would write it (the run_glue_no_trainer recipe):
``AutoTokenizer`` with ``padding=True`` per batch (dynamic padding),
``AutoModelForSequenceClassification``, ``torch.optim.AdamW`` (no weight decay
on biases and LayerNorm weights), ``get_linear_schedule_with_warmup``,
gradient clipping at 1.0, ``torch.set_num_threads(os.cpu_count())``, and an
evaluation on the dev file at each epoch end. The benchmark runs it in its own
process::

  python experiments/benchmarks/finetune_peer.py --model DIR --train_file T.tsv \
      --eval_file D.tsv --epochs 3 --batch 32 --lr 2e-5 --warmup_fraction 0.1 \
      --max_seq_length 64 --seed 0 --json OUT.json

With ``--write_init DIR`` it only writes the model it would start from
(``AutoModelForSequenceClassification`` with a fresh classifier, drawn after
``torch.manual_seed(seed)``) and the tokenizer files, and exits: the benchmark
converts that folder so that both sides start from the same weights::

  python experiments/benchmarks/finetune_peer.py --model DIR --num_labels 6 --seed 0 \
      --write_init INIT_DIR

Steps per epoch are ``len(train) // batch`` (the last partial batch is
dropped), as in bert_jax's loader, so both sides take the same number of
steps with the same warmup. Times: ``train_s`` runs from the first training
batch to the end of the last evaluation (the same span the benchmark takes
from bert_jax's log); ``setup_s`` is everything before it (imports, model and
tokenizer loading).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time

T_START = time.perf_counter()

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch  # pylint: disable=g-import-not-at-top,wrong-import-position
import transformers  # pylint: disable=g-import-not-at-top,wrong-import-position


def read_tsv(path: str) -> tuple[list[str], list[str]]:
  with open(path, encoding='utf-8', newline='') as f:
    rows = list(csv.reader(f, delimiter='\t', quoting=csv.QUOTE_NONE))
  return [r[0] for r in rows[1:]], [r[1] for r in rows[1:]]


def evaluate(model, tokenizer, texts, labels, batch, max_len) -> float:
  model.eval()
  hits = 0
  with torch.no_grad():
    for i in range(0, len(texts), batch):
      enc = tokenizer(texts[i:i + batch], padding=True, truncation=True,
                      max_length=max_len, return_tensors='pt')
      pred = model(**enc).logits.argmax(-1)
      hits += int((pred == torch.as_tensor(labels[i:i + batch])).sum())
  model.train()
  return hits / max(len(texts), 1)


# The tokenizer files a Hugging Face BERT folder carries (copied as they are).
TOKENIZER_FILES = ('vocab.txt', 'tokenizer.json', 'tokenizer_config.json',
                   'special_tokens_map.json')


def write_init(model_dir: str, num_labels: int, seed: int, out: str) -> None:
  """Writes the peer's starting point: MODEL_DIR with a fresh classifier.

  The classifier is drawn as ``from_pretrained`` draws it for a user
  (normal(0, initializer_range) weights, zero bias) after
  ``torch.manual_seed(SEED)``; the tokenizer files are copied unchanged.
  """
  torch.manual_seed(seed)
  model = transformers.AutoModelForSequenceClassification.from_pretrained(
      model_dir, num_labels=num_labels)
  model.save_pretrained(out)
  for name in TOKENIZER_FILES:
    if os.path.isfile(os.path.join(model_dir, name)):
      shutil.copy(os.path.join(model_dir, name), os.path.join(out, name))


def make_optimizer(model, lr: float, weight_decay: float, eps: float,
                   warmup_fraction: float, total_steps: int):
  """(torch AdamW, linear warmup/decay scheduler) as run_glue_no_trainer.

  No weight decay on biases and LayerNorm weights.
  """
  no_decay = ('bias', 'LayerNorm.weight')
  groups = [
      {'params': [w for n, w in model.named_parameters()
                  if not any(k in n for k in no_decay)],
       'weight_decay': weight_decay},
      {'params': [w for n, w in model.named_parameters()
                  if any(k in n for k in no_decay)], 'weight_decay': 0.0}]
  optimizer = torch.optim.AdamW(groups, lr=lr, eps=eps)
  scheduler = transformers.get_linear_schedule_with_warmup(
      optimizer, int(round(warmup_fraction * total_steps)), total_steps)
  return optimizer, scheduler


def train_step(model, enc, labels, optimizer, scheduler) -> float:
  """One update on a tokenized batch (mean cross-entropy, clip at 1.0)."""
  loss = model(**enc, labels=labels).loss
  loss.backward()
  torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
  optimizer.step()
  scheduler.step()
  optimizer.zero_grad()
  return float(loss.detach())


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--model', required=True, help='A Hugging Face model dir.')
  p.add_argument('--train_file', help='TSV with sentence and label columns.')
  p.add_argument('--eval_file', help='TSV, as --train_file.')
  p.add_argument('--epochs', type=int, default=3)
  p.add_argument('--batch', type=int, default=32)
  p.add_argument('--lr', type=float, default=2e-5)
  p.add_argument('--warmup_fraction', type=float, default=0.1)
  p.add_argument('--weight_decay', type=float, default=0.01)
  p.add_argument('--eps', type=float, default=1e-6)
  p.add_argument('--max_seq_length', type=int, default=64)
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--json', help='Where to write the report.')
  p.add_argument('--write_init', default='',
                 help='Only write the starting model (see above) here.')
  p.add_argument('--num_labels', type=int, default=0,
                 help='Classes of the classifier --write_init draws.')
  a = p.parse_args()
  if a.write_init:
    if a.num_labels < 2:
      p.error('--write_init needs --num_labels >= 2')
    write_init(a.model, a.num_labels, a.seed, a.write_init)
    return
  for name in ('train_file', 'eval_file', 'json'):
    if not getattr(a, name):
      p.error(f'--{name} is required (unless --write_init)')

  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(a.seed)
  train_x, train_y = read_tsv(a.train_file)
  dev_x, dev_y = read_tsv(a.eval_file)
  names = sorted(set(train_y))  # bert_jax's order for non-numeric labels.
  ids = {n: i for i, n in enumerate(names)}
  train_y = np.asarray([ids[y] for y in train_y])
  dev_y = np.asarray([ids[y] for y in dev_y])

  tokenizer = transformers.AutoTokenizer.from_pretrained(a.model)
  model = transformers.AutoModelForSequenceClassification.from_pretrained(
      a.model, num_labels=len(names))
  model.train()
  per_epoch = len(train_x) // a.batch
  total = per_epoch * a.epochs
  optimizer, scheduler = make_optimizer(model, a.lr, a.weight_decay, a.eps,
                                        a.warmup_fraction, total)
  rng = np.random.default_rng(a.seed)

  setup_s = time.perf_counter() - T_START
  t0 = time.perf_counter()
  dev_accuracy, epoch_s = [], []
  for _ in range(a.epochs):
    te = time.perf_counter()
    order = rng.permutation(len(train_x))
    for b in range(per_epoch):
      rows = order[b * a.batch:(b + 1) * a.batch]
      enc = tokenizer([train_x[i] for i in rows], padding=True,
                      truncation=True, max_length=a.max_seq_length,
                      return_tensors='pt')
      train_step(model, enc, torch.as_tensor(train_y[rows]), optimizer,
                 scheduler)
    dev_accuracy.append(evaluate(model, tokenizer, dev_x, dev_y, a.batch,
                                 a.max_seq_length))
    epoch_s.append(time.perf_counter() - te)
  train_s = time.perf_counter() - t0
  report = {'side': 'transformers', 'torch': torch.__version__,
            'transformers': transformers.__version__,
            'threads': torch.get_num_threads(), 'steps': total,
            'setup_s': setup_s, 'train_s': train_s, 'epoch_s': epoch_s,
            'dev_accuracy': dev_accuracy[-1],
            'dev_accuracy_per_epoch': dev_accuracy}
  with open(a.json, 'w') as f:
    json.dump(report, f, indent=2)
  print(json.dumps(report))


if __name__ == '__main__':
  main()
