"""NER tagging (CoNLL-2003 or local CoNLL files): BERT(-BiLSTM)(-CRF).

Shape letters: B batch, L tokens (max_seq_length), W words (L - 2: the most
that fit between [CLS] and [SEP]), T tags.

Features follow BERT's NER recipe: each word is tokenized on its own, its
first sub-token carries the word's tag and every other position (later
sub-tokens, specials, padding) has label -100. The same first sub-tokens,
gathered into a compact word sequence (``word_positions``/``word_mask``), are
what the CRF chains and what ``predict`` reports, so predictions are per
word. Words past max_seq_length are cut (with a warning) and predicted 'O'.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from bert_jax import pretrained
from bert_jax import storage
from bert_jax.data.finetune import conll
from bert_jax.data import tfds_source
from bert_jax.models.config import ModelConfig
from bert_jax.models.crf import CRF
from bert_jax.models.encoder import BertEncoder
from bert_jax.models.heads import TokenHead, gather_positions
from bert_jax.tasks import losses
from bert_jax.tasks import ner_metrics
from bert_jax.tasks.base import FinetuneTask

Array = jax.Array
IGNORE = -100  # Label of positions that are not a word's first sub-token.
FEATURE_KEYS = ('input_ids', 'token_type_ids', 'attention_mask', 'labels',
                'word_positions', 'word_labels', 'word_mask', 'example_index')


class BertTagger(nn.Module):
  """Encoder (+ BiLSTM per model config) -> token logits (-> CRF over words).

  Params: ``bert`` and ``classifier`` as in ``BertForTokenClassification`` (so
  its checkpoints load), plus ``crf`` when ``use_crf``.
  """
  config: ModelConfig
  num_labels: int
  use_crf: bool = False

  def setup(self):
    self.bert = BertEncoder(self.config, add_pooler=False)
    self.classifier = TokenHead(self.config, self.num_labels)
    if self.use_crf:
      self.crf = CRF(self.num_labels)

  def _logits(self, batch: dict[str, Array], deterministic: bool
              ) -> tuple[Array, Array]:
    enc = self.bert(batch['input_ids'], batch.get('token_type_ids'),
                    batch.get('attention_mask'), batch.get('position_ids'),
                    deterministic=deterministic)
    logits_BLT = self.classifier(enc['sequence_output'], deterministic)
    return logits_BLT, gather_positions(logits_BLT, batch['word_positions'])

  def __call__(self, batch: dict[str, Array], deterministic: bool = True
               ) -> dict[str, Array]:
    """{'logits' [B,L,T], 'word_logits' [B,W,T], 'log_likelihood' [B] (CRF)}."""
    logits_BLT, logits_BWT = self._logits(batch, deterministic)
    out = {'logits': logits_BLT, 'word_logits': logits_BWT}
    if self.use_crf:
      out['log_likelihood'] = self.crf(logits_BWT, batch['word_labels'],
                                       batch['word_mask'])
    return out

  def decode(self, batch: dict[str, Array]) -> Array:
    """Predicted tag ids per word, int32 [B, W] (0 past the last word)."""
    _, logits_BWT = self._logits(batch, True)
    if self.use_crf:
      return self.crf.viterbi_decode(logits_BWT, batch['word_mask'])
    tags_BW = jnp.argmax(logits_BWT, axis=-1).astype(jnp.int32)
    return jnp.where(batch['word_mask'] > 0, tags_BW, 0)


def featurize(sentences: Sequence[conll.Sentence], labels: Sequence[str],
              tokenizer: Any, max_seq_length: int, what: str
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Fixed-shape features of SENTENCES (see the module docstring).

  Args:
    sentences: Words and tags; every tag must be in LABELS.
    labels: Tag names; a tag's id is its index.
    tokenizer: A ``bert_jax.text.Tokenizer``.
    max_seq_length: L, specials included.
    what: Name of the data, for the truncation warning.

  Returns:
    (features with FEATURE_KEYS, each [N, ...] int32; words kept per sentence
    [N]).
  """
  L = max_seq_length
  if L < 3:
    raise ValueError(f'data.max_seq_length={L}: needs >= 3 ([CLS] word [SEP]).')
  W = L - 2
  label_id = {t: i for i, t in enumerate(labels)}
  vocab = sorted({w for s in sentences for w in s.tokens})
  pieces = {}
  for word, (ids, _) in zip(vocab, tokenizer.encode_words_batch(vocab)):
    # A word the normaliser erases entirely (e.g. a lone control character)
    # still needs a position to carry its tag.
    pieces[word] = list(ids) or [tokenizer.unk_id]
  N = len(sentences)
  f = {k: np.zeros((N, L), np.int32) for k in FEATURE_KEYS[:4]}
  f['input_ids'][:] = tokenizer.pad_id
  f['labels'][:] = IGNORE
  f.update({k: np.zeros((N, W), np.int32) for k in FEATURE_KEYS[4:7]})
  f['example_index'] = np.arange(N, dtype=np.int32)
  kept = np.zeros(N, np.int32)
  n_cut_sentences = n_cut_words = 0
  for i, s in enumerate(sentences):
    ids, n_words = [tokenizer.cls_id], 0
    for word, tag, where in zip(s.tokens, s.tags, s.where):
      if len(ids) > W:  # This word's first sub-token would not fit.
        break
      if tag not in label_id:
        raise ValueError(f'{where}: tag {tag!r} is not among the labels '
                         f'{list(labels)}.')
      f['word_positions'][i, n_words] = len(ids)
      f['word_labels'][i, n_words] = label_id[tag]
      f['labels'][i, len(ids)] = label_id[tag]
      ids.extend(pieces[word])
      n_words += 1
    ids = ids[:L - 1] + [tokenizer.sep_id]  # A cut word keeps its first pieces.
    f['input_ids'][i, :len(ids)] = ids
    f['attention_mask'][i, :len(ids)] = 1
    f['word_mask'][i, :n_words] = 1
    kept[i] = n_words
    if n_words < len(s.tokens):
      n_cut_sentences += 1
      n_cut_words += len(s.tokens) - n_words
  if n_cut_sentences:
    logging.warning(
        '%s: %d of %d sentences do not fit data.max_seq_length=%d; their last '
        '%d words in all are cut and will be predicted O.', what,
        n_cut_sentences, N, L, n_cut_words)
  return f, kept


class TaggingTask(FinetuneTask):
  """Word-level BIO tagging scored by entity F1 (seqeval / conlleval)."""

  main_metric = 'f1'

  def __init__(self, name: str, data_config: Any, tokenizer: Any,
               model_config: ModelConfig, train: Sequence[conll.Sentence],
               evals: dict[str, Sequence[conll.Sentence]],
               labels: Sequence[str]):
    """Builds the task (see ``FinetuneTask``); features are made on first use.

    Args:
      name: Task name (config.task).
      data_config: ``config.data`` (max_seq_length; crf: a CRF over the word
        emissions).
      tokenizer: A ``bert_jax.text.Tokenizer``.
      model_config: The encoder's config (BiLSTM fields included).
      train: Training sentences.
      evals: Evaluation split name -> sentences, in evaluation order.
      labels: Tag names in id order.
    """
    super().__init__(name, data_config, tokenizer, model_config, train, evals)
    self.labels = list(labels)
    self.use_crf = bool(data_config.get('crf', False))
    self.max_seq_length = int(data_config.max_seq_length)
    self.model = BertTagger(model_config.validate(), len(self.labels),
                            self.use_crf)
    self.loss_keys = ('crf_loss',) if self.use_crf else ('xent_loss',)
    self._kept: dict[str, np.ndarray] = {}

  # --- Data. ---

  def feature_spec(self):
    L, W = self.max_seq_length, self.max_seq_length - 2
    return {**{k: ((L,), np.int32) for k in FEATURE_KEYS[:4]},
            **{k: ((W,), np.int32) for k in FEATURE_KEYS[4:7]},
            'example_index': ((), np.int32)}

  def length_axes(self):
    # Word arrays are 2 shorter than the tokens ([CLS] and [SEP]), as tags.
    return {**super().length_axes(), 'tags': 2,
            **{k: 2 for k in FEATURE_KEYS[4:7]}}

  def build_features(self, examples, split):
    feats, kept = featurize(examples, self.labels, self.tokenizer,
                            self.max_seq_length,
                            f'{self.name} {split or "train"}')
    if split is not None:
      self._kept[split] = kept
    return feats

  # --- Training. ---

  def normalizers(self, batch):
    if self.use_crf:
      # The CRF loss is per sentence: its mean is over the rows.
      return {'crf_loss': jnp.asarray(batch['input_ids'].shape[0], jnp.float32)}
    n = jnp.sum((batch['labels'] >= 0).astype(jnp.float32))
    return {'xent_loss': n, 'token_accuracy': n}

  def sums(self, params, batch, rng, train):
    out = self.apply(params, batch, rng, train)
    if self.use_crf:
      return {'crf_loss': -jnp.sum(out['log_likelihood'])}
    labels_BL = batch['labels']  # -100 off a word's first sub-token
    xent, hits = losses.xent_and_accuracy(out['logits'], labels_BL,
                                          labels_BL >= 0)
    return {'xent_loss': xent, 'token_accuracy': hits}

  # --- Evaluation. ---

  def predict(self, params, batch):
    tags_BW = self.model.apply({'params': params}, batch,
                               method=BertTagger.decode)
    return {'tags': tags_BW, 'example_index': batch['example_index']}

  def _tag_lists(self, split: str, outputs: dict[str, np.ndarray]):
    """(sentences, gold tags, predicted tags) of the examples in OUTPUTS."""
    self.check_split(split)
    sents = self.eval_examples[split]
    self.eval_features()  # Words kept per sentence come with the features.
    kept = self._kept[split]
    tags_NW = np.asarray(outputs['tags'])
    index_N = np.asarray(outputs['example_index'])
    if tags_NW.ndim != 2 or len(tags_NW) != len(index_N):
      raise ValueError(f'{self.name} {split}: outputs tags {tags_NW.shape} and '
                       f'example_index {index_N.shape} do not line up.')
    if index_N.size and not 0 <= index_N.min() <= index_N.max() < len(sents):
      raise ValueError(f'{self.name} {split}: example_index outside '
                       f'[0, {len(sents)}).')
    chosen, gold, pred = [], [], []
    for row, i in enumerate(index_N):
      s, n = sents[i], int(kept[i])
      chosen.append(s)
      gold.append(list(s.tags))
      # Words cut off by max_seq_length are predicted 'O'.
      pred.append([self.labels[t] for t in tags_NW[row, :n]] +
                  ['O'] * (len(s.tokens) - n))
    return chosen, gold, pred

  def evaluate_split(self, split, outputs, directory=None):
    """Entity precision/recall/f1 (micro), per type (``f1_PER``...), token
    accuracy, over the examples present in OUTPUTS. With DIRECTORY also
    ``predictions_<split>.txt``: 'word gold predicted' lines, a blank line
    between sentences (conlleval's input format)."""
    sents, gold, pred = self._tag_lists(split, outputs)
    if directory is not None:
      storage.makedirs(directory)
      path = os.path.join(directory, f'predictions_{split}.txt')
      storage.write_text(path, ''.join(  # Whole: a kill leaves the old file.
          ''.join(f'{w} {a} {b}\n' for w, a, b in zip(s.tokens, g, p)) + '\n'
          for s, g, p in zip(sents, gold, pred)))
    return ner_metrics.ner_metrics(gold, pred)

  def metadata(self):
    return {'task': self.name, 'labels': self.labels, 'crf': self.use_crf,
            'max_seq_length': self.max_seq_length, 'tag_scheme': 'BIO'}


def _first(sentences: list[conll.Sentence], n: int) -> list[conll.Sentence]:
  n = tfds_source.check_max_examples(n)
  return sentences[:n] if n else sentences


def make_conll2003(name: str, config: Any, tokenizer: Any,
                   model_config: ModelConfig) -> TaggingTask:
  """CoNLL-2003 from TFDS: trains on data.train_split, evaluates on the
  'dev' (TFDS's name for validation) and 'test' splits, in that order."""
  d = config.data
  train, labels = conll.load_conll2003(d.train_split, d.tfds_data_dir,
                                       d.max_train_examples)
  evals = {s: conll.load_conll2003(s, d.tfds_data_dir, d.max_eval_examples)[0]
           for s in ('dev', 'test')}
  return TaggingTask(name, d, tokenizer, model_config, train, evals, labels)


def make_local(name: str, config: Any, tokenizer: Any,
               model_config: ModelConfig) -> TaggingTask:
  """CoNLL-format files data.train_file / data.eval_file (split 'eval').

  The labels are the train file's tags (sorted, 'O' first); an eval tag
  outside them is an error naming its line. Evaluating a fine-tuned
  checkpoint (config.eval_only, or no train_file) takes the labels saved in
  its task.json instead, so tag ids mean what they meant in training.
  """
  d = config.data
  saved = pretrained.saved_labels(config.init_from) if (
      config.get('eval_only', False) or not d.train_file) else None
  if not d.train_file and saved is None:
    raise ValueError(f'config.task={name!r} needs config.data.train_file (a '
                     'CoNLL file; its tags define the label set), or an '
                     'init_from checkpoint with labels in its task.json.')
  train_all = conll.read_conll_file(d.train_file) if d.train_file else []
  # Labels from the whole file, so max_train_examples never changes them.
  labels = list(saved) if saved is not None else conll.infer_labels(train_all)
  evals = {}
  if d.eval_file:
    sents = _first(conll.read_conll_file(d.eval_file), d.max_eval_examples)
    conll.check_tags(sents, labels, d.train_file or config.init_from)
    evals['eval'] = sents
  return TaggingTask(name, d, tokenizer, model_config,
                     _first(train_all, d.max_train_examples), evals, labels)
