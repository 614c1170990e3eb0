"""Extractive QA (SQuAD v1.1 / v2.0, or local SQuAD JSON): spans and EM/F1.

Training predicts the answer's start and end token in each window (both at
[CLS] when the window does not hold the answer, or there is none). At
evaluation every question collects candidate spans from all its windows, as
BERT's ``run_squad.py`` ``write_predictions`` does: the best ``n_best_size``
starts and ends per window, only document tokens, the start in the window
that gives it the most context, ``end >= start`` and at most
``max_answer_length`` tokens. Under v2 the no-answer score (start + end
logit at [CLS], the lowest over the question's windows) competes with the
best span: the answer is '' when it wins by more than
``null_score_diff_threshold``. One difference from BERT: windows' logits are
filtered *before* taking the top ``n_best_size``, so a window never runs out
of valid candidates because query or padding positions scored high.

Shape letters: B batch, L sequence length, N windows of a split.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from bert_jax import storage
from bert_jax.data.finetune import squad
from bert_jax.models.config import ModelConfig
from bert_jax.models.heads import BertForQuestionAnswering
from bert_jax.tasks import squad_metrics
from bert_jax.tasks.base import FinetuneTask

# Logit given to padding so that softmax puts no mass there (float32).
_NEG = -1e9
# Null odds of a question with no valid span at all: it is always null.
_NO_SPAN_ODDS = 1e9
TFDS_NAMES = {'squad_v1': 'squad/v1.1', 'squad_v2': 'squad/v2.0'}
LOCAL_SPLIT = 'eval'


class QaTask(FinetuneTask):
  """Span extraction with ``BertForQuestionAnswering``."""

  loss_keys = ('span_loss',)
  main_metric = 'f1'
  main_metric_mode = 'max'

  def __init__(self, name: str, data_config: Any, tokenizer,
               model_config: ModelConfig,
               train: list[squad.SquadExample],
               evals: dict[str, list[squad.SquadExample]],
               version_2: bool):
    """Builds the task (see ``FinetuneTask``); windows are made on first use.

    Args:
      name: The task name (``config.task``).
      data_config: ``config.data`` (max_seq_length, doc_stride,
        max_query_length, max_answer_length, n_best_size,
        null_score_diff_threshold).
      tokenizer: A `bert_jax.text.Tokenizer`.
      model_config: The model's config.
      train: Training examples (may be empty for evaluation only).
      evals: Evaluation split name -> examples.
      version_2: Whether questions may have no answer (SQuAD v2 rules).
    """
    d = data_config
    squad.check_lengths(d.max_seq_length, d.doc_stride, d.max_query_length)
    if d.max_answer_length < 1 or d.n_best_size < 1:
      raise ValueError(
          f'config.data.max_answer_length={d.max_answer_length} and '
          f'config.data.n_best_size={d.n_best_size} must be >= 1.')
    super().__init__(name, data_config, tokenizer, model_config, train, evals)
    self.model = BertForQuestionAnswering(model_config)
    self.version_2 = bool(version_2)
    self._windows: dict[str | None, squad.SquadFeatures] = {}

  # --- Features. ---

  def build_features(self, examples, split):
    d = self.data
    windows = squad.convert_examples(
        examples, self.tokenizer, max_seq_length=d.max_seq_length,
        doc_stride=d.doc_stride, max_query_length=d.max_query_length,
        is_training=split is None)
    self._windows[split] = windows
    if split is None:
      return {k: windows.arrays[k] for k in self.feature_spec()}
    return dict(windows.arrays)

  def train_windows(self) -> squad.SquadFeatures:
    """The training windows (with their host-side maps)."""
    self.train_features()
    return self._windows[None]

  def eval_windows(self, split: str) -> squad.SquadFeatures:
    """The windows of an evaluation split (with their host-side maps)."""
    self.check_split(split)
    self.eval_features()
    return self._windows[split]

  def feature_spec(self):
    L = self.data.max_seq_length
    return {**{k: ((L,), np.int32) for k in squad.MODEL_KEYS},
            'start_positions': ((), np.int32), 'end_positions': ((), np.int32)}

  def length_axes(self):
    return {**super().length_axes(), 'start_logits': 0, 'end_logits': 0}

  # --- Training. ---

  def normalizers(self, batch):
    n = jnp.asarray(batch['input_ids'].shape[0], jnp.float32)
    return {'span_loss': n, 'span_accuracy': n}

  def sums(self, params, batch, rng, train):
    out = self.apply(params, batch, rng, train)
    real_BL = batch['attention_mask'] > 0
    # Padding can never be the answer; masking it also keeps the loss
    # independent of how far a batch is padded.
    start_BL = jnp.where(real_BL, out['start_logits'], _NEG)  # float32
    end_BL = jnp.where(real_BL, out['end_logits'], _NEG)
    sp_B, ep_B = batch['start_positions'], batch['end_positions']
    xent_B = 0.5 * (
        optax.softmax_cross_entropy_with_integer_labels(start_BL, sp_B) +
        optax.softmax_cross_entropy_with_integer_labels(end_BL, ep_B))
    hit_B = ((jnp.argmax(start_BL, -1) == sp_B) &
             (jnp.argmax(end_BL, -1) == ep_B))
    return {'span_loss': jnp.sum(xent_B),
            'span_accuracy': jnp.sum(hit_B.astype(jnp.float32))}

  # --- Evaluation. ---

  def predict(self, params, batch):
    out = self.apply(params, batch, None, False)
    return {'start_logits': out['start_logits'], 'end_logits': out['end_logits']}

  def postprocess(self, split: str, outputs: dict[str, np.ndarray]
                  ) -> dict[str, dict[str, Any]]:
    """Answers of a split from its windows' logits.

    Args:
      split: The evaluation split.
      outputs: ``start_logits`` and ``end_logits`` [N, L], one row per window
        of ``eval_features()[split]``, in order.

    Returns:
      ``predictions`` {qid: text}, ``nbest`` {qid: [{text, probability,
      start_logit, end_logit}]}, ``non_null`` {qid: best non-empty text} and
      (v2) ``null_odds`` {qid: null score - best span score}.

    Raises:
      ValueError: If OUTPUTS does not have one row per window.
    """
    feats = self.eval_windows(split)
    examples = self.eval_examples[split]
    start_NL = np.asarray(outputs['start_logits'], np.float32)
    end_NL = np.asarray(outputs['end_logits'], np.float32)
    want = feats.token_to_word.shape
    if start_NL.shape != want or end_NL.shape != want:
      raise ValueError(
          f'{self.name}/{split}: outputs have start_logits {start_NL.shape} and '
          f'end_logits {end_NL.shape}; expected {want}, one row per window of '
          'eval_features() in order (was the split only partly predicted?)')
    doc_NL = feats.token_to_word != squad.NOT_DOC
    starts_NL = np.where(doc_NL & feats.token_is_max_context, start_NL, -np.inf)
    ends_NL = np.where(doc_NL, end_NL, -np.inf)
    k = min(self.data.n_best_size, want[1])
    top_start_NK = np.argsort(-starts_NL, axis=1, kind='stable')[:, :k]
    top_end_NK = np.argsort(-ends_NL, axis=1, kind='stable')[:, :k]
    null_N = start_NL[:, 0] + end_NL[:, 0]
    windows_of = [[] for _ in examples]
    for f, i in enumerate(feats.arrays['example_index']):
      windows_of[i].append(f)
    result = {'predictions': {}, 'nbest': {}, 'non_null': {}, 'null_odds': {}}
    for i, ex in enumerate(examples):
      cands = []  # (score, window, start, end)
      for f in windows_of[i]:
        s_K, e_K = top_start_NK[f], top_end_NK[f]
        s_KK, e_KK = s_K[:, None], e_K[None, :]
        score_KK = starts_NL[f, s_K][:, None] + ends_NL[f, e_K][None, :]
        ok_KK = ((e_KK >= s_KK) & (e_KK - s_KK < self.data.max_answer_length)
                 & np.isfinite(score_KK))
        for a, b in zip(*np.nonzero(ok_KK)):
          cands.append((float(score_KK[a, b]), f, int(s_K[a]), int(e_K[b])))
      if self.version_2:
        # The no-answer candidate: [CLS] in the window where it scores lowest.
        f = windows_of[i][int(np.argmin(null_N[windows_of[i]]))]
        cands.append((float(null_N[f]), f, 0, 0))
      cands.sort(key=lambda t: -t[0])
      self._answer(result, ex, feats, examples, cands, start_NL, end_NL)
    return result

  def _answer(self, result, ex, feats, examples, cands, start_NL, end_NL
              ) -> None:
    """Fills RESULT for one question from its sorted candidates."""
    nbest, seen, null = [], set(), None
    n_best = self.data.n_best_size
    for _, f, s, e in cands:
      if s == 0:  # Only the null candidate points at [CLS].
        null = ('', float(start_NL[f, 0]), float(end_NL[f, 0]))
      if len(nbest) >= n_best:
        continue  # Still looking for the null candidate.
      text = '' if s == 0 else squad.answer_text(feats, examples, f, s, e,
                                                 self.tokenizer)
      if text in seen:
        continue
      seen.add(text)
      nbest.append((text, float(start_NL[f, s]), float(end_NL[f, e])))
    if null is not None and '' not in seen:
      nbest.append(null)
    if not nbest:
      nbest.append(('', 0.0, 0.0))
    total = np.asarray([s + e for _, s, e in nbest])
    probs = np.exp(total - total.max())
    probs /= probs.sum()
    result['nbest'][ex.qid] = [
        {'text': t, 'probability': float(p), 'start_logit': s, 'end_logit': e}
        for (t, s, e), p in zip(nbest, probs)]
    best_span = next((n for n in nbest if n[0]), None)
    if best_span is None:
      # A small n_best_size can be filled by the null alone; v2 still needs
      # the best span to weigh it against.
      f, s, e = next(((f, s, e) for _, f, s, e in cands if s), (0, 0, 0))
      if s:
        best_span = (squad.answer_text(feats, examples, f, s, e, self.tokenizer),
                     float(start_NL[f, s]), float(end_NL[f, e]))
    result['non_null'][ex.qid] = best_span[0] if best_span else ''
    if not self.version_2:
      result['predictions'][ex.qid] = nbest[0][0]
      return
    odds = _NO_SPAN_ODDS
    if best_span is not None:
      odds = null[1] + null[2] - best_span[1] - best_span[2]
    result['null_odds'][ex.qid] = odds
    below = odds <= self.data.null_score_diff_threshold
    result['predictions'][ex.qid] = best_span[0] if best_span and below else ''

  def evaluate_split(self, split, outputs, directory=None):
    """EM/F1 (and the v2 threshold search). With DIRECTORY also
    predictions_SPLIT.json, nbest_SPLIT.json (+ null_odds_SPLIT.json, v2):
    the files of run_squad.py, so the official evaluation script reads them
    (``--na-prob-file null_odds_SPLIT.json``)."""
    r = self.postprocess(split, outputs)
    if directory is not None:
      storage.makedirs(directory)
      files = [('predictions', r['predictions']), ('nbest', r['nbest'])]
      if self.version_2:
        files.append(('null_odds', r['null_odds']))
      for stem, obj in files:
        path = os.path.join(directory, f'{stem}_{split}.json')
        storage.write_text(  # Whole: a kill mid-write leaves the old file.
            path, json.dumps(obj, indent=2, ensure_ascii=False) + '\n')
    answers = {e.qid: list(e.answers) for e in self.eval_examples[split]}
    return squad_metrics.evaluate(
        answers, r['predictions'], version_2=self.version_2,
        null_odds=r['null_odds'] if self.version_2 else None,
        non_null_predictions=r['non_null'])

  def metadata(self):
    d = self.data
    return {'task': self.name, 'version_2': self.version_2,
            **{k: d[k] for k in ('max_seq_length', 'doc_stride',
                                 'max_query_length', 'max_answer_length',
                                 'n_best_size', 'null_score_diff_threshold')}}


# --- Builders (see bert_jax.tasks.registry). ---


def make_squad(name: str, config: Any, tokenizer, model_config: ModelConfig
               ) -> QaTask:
  """SQuAD v1.1 ('squad_v1') or v2.0 ('squad_v2') from TFDS.

  Trains on ``config.data.train_split`` and evaluates on 'validation'.
  """
  if name not in TFDS_NAMES:
    raise ValueError(f'config.task={name!r}; make_squad builds one of '
                     f'{tuple(TFDS_NAMES)}.')
  d = config.data
  tfds_name = TFDS_NAMES[name]
  train = squad.load_tfds(tfds_name, d.train_split, d.tfds_data_dir,
                          d.max_train_examples)
  evals = {'validation': squad.load_tfds(tfds_name, 'validation',
                                         d.tfds_data_dir, d.max_eval_examples)}
  return QaTask(name, d, tokenizer, model_config, train, evals,
                version_2=name == 'squad_v2')


def make_local(name: str, config: Any, tokenizer, model_config: ModelConfig
               ) -> QaTask:
  """QA from local SQuAD JSON files (``config.data.train_file/eval_file``).

  SQuAD v2 rules apply when any question in either file has no answer. The
  evaluation split is called 'eval'.
  """
  d = config.data
  if not d.train_file and not d.eval_file:
    raise ValueError(f'config.task={name!r} needs config.data.train_file '
                     'and/or config.data.eval_file (SQuAD JSON files).')
  train = (squad.read_squad_json(d.train_file, d.max_train_examples)
           if d.train_file else [])
  evals = ({LOCAL_SPLIT: squad.read_squad_json(d.eval_file,
                                               d.max_eval_examples)}
           if d.eval_file else {})
  version_2 = squad.is_version_2(train) or any(
      squad.is_version_2(e) for e in evals.values())
  return QaTask(name, d, tokenizer, model_config, train, evals, version_2)
