"""Sentence (pair) classification and regression: GLUE and local files.

examples (glue / local_files) -> features (tokenizer, fixed length) ->
BertForSequenceClassification -> cross-entropy (or MSE with one output) ->
GLUE metrics / local metrics -> GLUE submission TSV + predictions JSONL.

Shape letters: B batch, L length, C classes (1 for regression).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

from absl import logging
import jax.numpy as jnp
import numpy as np
from bert_jax import pretrained
from bert_jax import storage
from bert_jax.data.finetune import glue
from bert_jax.data.finetune import local_files
from bert_jax.data.finetune.glue import Example
from bert_jax.models.config import ModelConfig
from bert_jax.models.heads import BertForSequenceClassification
from bert_jax.tasks import losses
from bert_jax.tasks import metrics as metrics_lib
from bert_jax.tasks.base import FinetuneTask

# GLUE task -> the metric that picks the best checkpoint.
GLUE_MAIN_METRIC = {
    'cola': 'mcc', 'sst2': 'accuracy', 'mrpc': 'f1', 'qqp': 'f1',
    'stsb': 'pearson', 'mnli': 'accuracy', 'qnli': 'accuracy',
    'rte': 'accuracy', 'wnli': 'accuracy'}
LOCAL_TASKS = ('local_classification', 'local_regression')
MODEL_INPUTS = ('input_ids', 'token_type_ids', 'attention_mask')


def featurize(examples: Sequence[Example], tokenizer: Any, max_seq_length: int,
              regression: bool, chunk: int = 8192) -> dict[str, np.ndarray]:
  """Fixed-shape features [N, ...] of EXAMPLES.

  Pairs are cut longest-first to MAX_SEQ_LENGTH tokens (specials included),
  as BERT's run_classifier does. ``weight`` is 1.0 for every real row, so a
  padding row would only need weight 0; ``example_index`` maps outputs back
  to examples.
  """
  n, L = len(examples), max_seq_length
  feats = {k: np.zeros((n, L), np.int32) for k in MODEL_INPUTS}
  feats['label'] = np.asarray([e.label for e in examples],
                              np.float32 if regression else np.int32).reshape(n)
  feats['weight'] = np.ones((n,), np.float32)
  feats['example_index'] = np.arange(n, dtype=np.int32)
  is_pair = bool(examples) and examples[0].text_b is not None
  for start in range(0, n, chunk):
    part = examples[start:start + chunk]
    texts = ([(e.text_a, e.text_b or '') for e in part] if is_pair
             else [e.text_a for e in part])
    enc = tokenizer.encode_batch(texts, max_length=L, pad_to=L)
    for k in MODEL_INPUTS:
      feats[k][start:start + len(part)] = enc[k]
  return feats


def _safe_name(split: str) -> str:
  # Split names may be TFDS slices ('validation[:10%]'): keep file names plain.
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', split).strip('_')


class ClassificationTask(FinetuneTask):
  """Classification (C >= 2 classes) or regression (one score) of texts."""

  def __init__(self, name: str, data_config: Any, tokenizer: Any,
               model_config: ModelConfig, train: Sequence[Example],
               evals: dict[str, Sequence[Example]],
               label_names: Sequence[str] | None,
               extra_metadata: dict[str, Any] | None = None):
    """Builds the task over already-read examples (see ``FinetuneTask``).

    Args:
      name: A GLUE task name, or local_classification / local_regression.
      data_config: ``config.data`` (max_seq_length).
      tokenizer: A ``bert_jax.text.Tokenizer``.
      model_config: The encoder's config.
      train: Training examples (labels: class ids or floats).
      evals: Evaluation split name -> examples, in evaluation order.
      label_names: Class names in id order; None = regression.
      extra_metadata: More JSON-able facts for ``metadata()``.
    """
    super().__init__(name, data_config, tokenizer, model_config, train, evals)
    self.glue_task = name if name in glue.TASKS else None
    self.regression = label_names is None
    self.label_names = None if self.regression else tuple(label_names)
    self.num_labels = 1 if self.regression else len(self.label_names)
    if not self.regression and self.num_labels < 2:
      raise ValueError(f'{name}: classification needs >= 2 labels, got '
                       f'{self.label_names}.')
    self.max_seq_length = int(data_config.max_seq_length)
    self.model = BertForSequenceClassification(model_config, self.num_labels)
    self.loss_keys = ('mse_loss',) if self.regression else ('ce_loss',)
    if self.glue_task:
      self.main_metric = GLUE_MAIN_METRIC[name]
    else:
      self.main_metric = 'pearson' if self.regression else 'accuracy'
    self._extra = dict(extra_metadata or {})

  # --- Data. ---

  def feature_spec(self):
    L = self.max_seq_length
    return {**{k: ((L,), np.int32) for k in MODEL_INPUTS},
            'label': ((), np.float32 if self.regression else np.int32),
            'weight': ((), np.float32), 'example_index': ((), np.int32)}

  def build_features(self, examples, split):
    feats = featurize(examples, self.tokenizer, self.max_seq_length,
                      self.regression)
    full = int(np.sum(feats['attention_mask'][:, -1] > 0)) if len(examples) else 0
    logging.info('%s %s: %d examples, %d reach max_seq_length=%d (cut if longer).',
                 self.name, split or 'train', len(examples), full,
                 self.max_seq_length)
    return feats

  # --- Training. ---

  def normalizers(self, batch):
    n = jnp.sum(batch['weight'].astype(jnp.float32))
    keys = ('mse_loss',) if self.regression else ('ce_loss', 'accuracy')
    return {k: n for k in keys}

  def sums(self, params, batch, rng, train):
    logits_BC = self.apply(params, batch, rng, train)['logits']
    w_B = batch['weight']
    if self.regression:
      err_B = logits_BC[:, 0].astype(jnp.float32) - batch['label'].astype(jnp.float32)
      return {'mse_loss': jnp.sum(jnp.square(err_B) * w_B)}
    xent, hits = losses.xent_and_accuracy(logits_BC, batch['label'], w_B)
    return {'ce_loss': xent, 'accuracy': hits}

  # --- Evaluation. ---

  def predict(self, params, batch):
    out = self.apply(params, batch, None, False)
    return {'logits': out['logits'], 'example_index': batch['example_index']}

  def _rows(self, split: str, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Example index of each output row (checked against the split)."""
    self.check_split(split)
    n = len(self.eval_examples[split])
    rows = np.asarray(outputs.get('example_index', np.arange(len(outputs['logits']))))
    if rows.size and (rows.min() < 0 or rows.max() >= n):
      raise ValueError(f'{self.name} {split}: example_index outside [0, {n}).')
    return rows

  def _unlabeled(self, split: str) -> bool:
    # GLUE test labels are hidden (TFDS stores -1): no metrics, only a
    # submission. The diagnostic set (ax) is a test split too.
    return self.glue_task is not None and (split.startswith('test')
                                           or glue.is_ax(split))

  def _predictions(self, logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, np.float32)
    return logits[:, 0] if self.regression else np.argmax(logits, -1)

  def evaluate_split(self, split, outputs, directory=None):
    """Metrics (none for hidden GLUE test labels); with DIRECTORY also
    predictions_<split>.jsonl and, for GLUE, the submission TSV."""
    rows = self._rows(split, outputs)
    preds = self._predictions(outputs['logits'])
    if directory is not None:
      self._write_predictions(split, rows, outputs, preds, directory)
    if self._unlabeled(split) or rows.size == 0:
      return {}
    labels = np.asarray([self.eval_examples[split][i].label for i in rows])
    if self.glue_task:
      return metrics_lib.glue_metrics(self.glue_task, preds, labels)
    if self.regression:
      return metrics_lib.regression_metrics(preds, labels)
    return metrics_lib.classification_metrics(preds, labels, self.num_labels)

  def _write_predictions(self, split, rows, outputs, preds, directory):
    """A validation split's GLUE TSV goes to DIRECTORY/<GLUE name> (e.g.
    MNLI-m.tsv); a test split's to DIRECTORY/test/<GLUE name>, a folder to
    zip and submit."""
    examples = [self.eval_examples[split][i] for i in rows]
    logits = np.asarray(outputs['logits'], np.float32)
    storage.makedirs(directory)
    probs = None
    if not self.regression:
      z = np.exp(logits - logits.max(-1, keepdims=True))
      probs = z / z.sum(-1, keepdims=True)
    unlabeled = self._unlabeled(split)
    path = os.path.join(directory, f'predictions_{_safe_name(split)}.jsonl')
    lines = []  # Written whole: a kill mid-write leaves the old file.
    for r, e in enumerate(examples):
      rec = {'index': e.idx, 'text_a': e.text_a}
      if e.text_b is not None:
        rec['text_b'] = e.text_b
      if self.regression:
        rec['prediction'] = float(preds[r])
        rec['label'] = None if unlabeled else float(e.label)
      else:
        rec['prediction'] = self.label_names[int(preds[r])]
        rec['probability'] = float(probs[r, preds[r]])
        rec['label'] = None if unlabeled else self.label_names[int(e.label)]
      lines.append(json.dumps(rec, ensure_ascii=False) + '\n')
    storage.write_text(path, ''.join(lines))
    if self.glue_task:
      sub_dir = os.path.join(directory, 'test') if unlabeled else directory
      glue.write_glue_submission(
          self.glue_task, [e.idx for e in examples], preds, self.label_names,
          os.path.join(sub_dir, glue.submission_file_name(self.glue_task, split)))

  def metadata(self) -> dict[str, Any]:
    return {'task': self.name, 'labels': list(self.label_names or []),
            'num_labels': self.num_labels, 'regression': self.regression,
            'max_seq_length': self.max_seq_length, **self._extra}


# --- Builders named in bert_jax.tasks.registry. ---


def _eval_splits(config: Any, default: Sequence[str]) -> tuple[str, ...]:
  # Optional config.data.eval_splits ('a,b'), e.g. the GLUE test splits.
  given = str(config.data.get('eval_splits', '') or '')
  return tuple(s.strip() for s in given.split(',') if s.strip()) or tuple(default)


def make_glue(name: str, config: Any, tokenizer: Any,
              model_config: ModelConfig) -> ClassificationTask:
  """A GLUE task from TFDS ``glue/NAME`` (validation splits for evaluation)."""
  if name not in glue.TASKS:
    raise ValueError(f'config.task={name!r} is not a GLUE task {glue.TASKS}.')
  d = config.data
  train = glue.load_examples(name, d.train_split, d.tfds_data_dir,
                             d.max_train_examples)
  evals = {s: glue.load_examples(name, s, d.tfds_data_dir, d.max_eval_examples)
           for s in _eval_splits(config, glue.EVAL_SPLITS[name])}
  return ClassificationTask(
      name, d, tokenizer, model_config, train, evals, glue.LABEL_NAMES[name],
      extra_metadata={'dataset': f'glue/{name}'})


def make_local(name: str, config: Any, tokenizer: Any,
               model_config: ModelConfig) -> ClassificationTask:
  """local_classification / local_regression over config.data's files.

  Class labels come from the training file, except when evaluating a
  fine-tuned checkpoint (config.eval_only, or no train_file): then from the
  checkpoint's task.json, so class ids mean what they meant in training.
  """
  if name not in LOCAL_TASKS:
    raise ValueError(f'config.task={name!r}; choose one of {LOCAL_TASKS}.')
  d = config.data
  regression = name == 'local_regression'
  if not d.train_file and not d.eval_file:
    raise ValueError(f'{name} needs config.data.train_file and/or '
                     'config.data.eval_file.')
  # Evaluating a fine-tuned checkpoint: its class ids are the ones to use.
  use_saved = not regression and (config.get('eval_only', False)
                                   or not d.train_file)
  saved = None if regression else pretrained.saved_labels(config.init_from)
  data = local_files.load(d.train_file, d.eval_file, d.text_fields,
                          d.label_field, regression,
                          saved if use_saved else None,
                          d.max_train_examples, d.max_eval_examples,
                          label_source=(f'{config.init_from} task.json'
                                        if use_saved and saved else ''))
  if not use_saved and saved and list(saved) != list(data.label_names or []):
    logging.warning("%s labels %s differ from init_from's %s: the checkpoint's "
                    'classifier outputs meant other classes.', d.train_file,
                    list(data.label_names), saved)
  evals = {'validation': data.eval} if data.eval else {}
  return ClassificationTask(
      name, d, tokenizer, model_config, data.train, evals, data.label_names,
      extra_metadata={
          'text_fields': d.text_fields, 'label_field': d.label_field,
          'train_file': d.train_file, 'eval_file': d.eval_file})
