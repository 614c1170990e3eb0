"""The peer side of experiments/benchmarks/benchmark_step.py: a Hugging Face
``BertForPreTraining`` (PyTorch) training step at the same shapes.

Run through ``benchmark_step.py --side torch`` (the parent starts it in its
own process); the shared pieces (synthetic batches, FLOP count, timing
statistics, peak RSS) live in benchmark_step.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time

import numpy as np

from bert_jax.data.pretrain import objectives
from benchmark_step import (FIRST_WORD_ID, MASK, NUM_BATCHES, SPECIAL_IDS,  # pylint: disable=g-multiple-import
                            OtherLoad, model_flops, peak_rss_mb, step_stats,
                            host_batches)


def host_masks(batch: dict[str, np.ndarray], rng: np.random.Generator,
               vocab_size: int, max_predictions: int
               ) -> tuple[np.ndarray, np.ndarray]:
  """(corrupted ids [B, L], MLM labels [B, L] with -100 = not predicted).

  The same rule as bert_jax.data.pretrain.masking: round(15%) of a row's real,
  non-special tokens (1..P), of which 80% [MASK], 10% random, 10% kept.
  """
  ids = batch['input_ids']
  candidate = (batch['attention_mask'] > 0) & ~np.isin(ids, SPECIAL_IDS)
  labels = np.full(ids.shape, -100, np.int64)
  corrupted = ids.copy()
  for row in range(ids.shape[0]):
    cand = np.flatnonzero(candidate[row])
    n = min(max(int(np.round(len(cand) * 0.15)), 1), max_predictions, len(cand))
    chosen = rng.choice(cand, size=n, replace=False)
    labels[row, chosen] = ids[row, chosen]
    action = rng.random(n)
    corrupted[row, chosen[action < 0.8]] = MASK
    rand = chosen[(action >= 0.8) & (action < 0.9)]
    corrupted[row, rand] = rng.integers(FIRST_WORD_ID, vocab_size, size=len(rand))
  return corrupted, labels


def run_torch(args) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  rss_imports = peak_rss_mb()
  torch.set_num_threads(os.cpu_count())
  torch.manual_seed(args.seed)
  m = json.loads(args.model_json)
  dev = args.torch_device
  if dev == 'auto':
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
  cfg = transformers.BertConfig(
      vocab_size=m['vocab_size'], hidden_size=m['hidden_size'],
      num_hidden_layers=m['num_layers'], num_attention_heads=m['num_heads'],
      intermediate_size=m['intermediate_size'],
      max_position_embeddings=m['max_position_embeddings'],
      type_vocab_size=m['type_vocab_size'],
      hidden_dropout_prob=m['hidden_dropout'],
      attention_probs_dropout_prob=m['attention_dropout'],
      layer_norm_eps=m['layer_norm_eps'], hidden_act=m['hidden_act'])
  sentence = objectives.get(args.objective).sentence_head != 'none'
  cls = transformers.BertForPreTraining if sentence else transformers.BertForMaskedLM
  model = cls(cfg).to(dev).train()
  # The same optimizer as bert_jax's defaults (configs/common.optim_group):
  # AdamW, eps 1e-6, decay 0.01 except biases and norms, global-norm clip 1.
  decay, no_decay = [], []
  for name, p in model.named_parameters():
    (no_decay if name.endswith('bias') or 'LayerNorm' in name else decay).append(p)
  opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.01},
                           {'params': no_decay, 'weight_decay': 0.0}],
                          lr=1e-4, betas=(0.9, 0.999), eps=1e-6)
  rng = np.random.default_rng(args.seed + 1)
  batches = []
  host = host_batches(args, 'torch')
  for b in host:
    ids, labels = host_masks(b, rng, args.vocab_size, args.max_predictions)
    t = {'input_ids': torch.from_numpy(ids.astype(np.int64)),
         'attention_mask': torch.from_numpy(b['attention_mask'].astype(np.int64)),
         'token_type_ids': torch.from_numpy(b['token_type_ids'].astype(np.int64)),
         'labels': torch.from_numpy(labels)}
    if sentence:
      t['next_sentence_label'] = torch.from_numpy(b['nsp_label'].astype(np.int64))
    batches.append({k: v.to(dev) for k, v in t.items()})
  autocast_dtype = torch.bfloat16 if args.dtype == 'bfloat16' else None
  sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None)

  def step(batch):
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev, dtype=autocast_dtype or torch.float32,
                        enabled=autocast_dtype is not None):
      loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss

  t0 = time.perf_counter()
  step(batches[0])
  sync()
  first_s = time.perf_counter() - t0
  for i in range(args.warmup):
    step(batches[(i + 1) % NUM_BATCHES])
  sync()
  times = []
  with OtherLoad() as other:
    for i in range(args.steps):
      batch = batches[(args.warmup + 1 + i) % NUM_BATCHES]
      t = time.perf_counter()
      loss = step(batch)
      sync()
      times.append(time.perf_counter() - t)
  loss = float(loss.detach())
  if not math.isfinite(loss):
    raise FloatingPointError(f'HF loss is {loss} after the timed steps.')
  total = sum(p.numel() for p in model.parameters())
  embedding = sum(p.numel() for n, p in model.named_parameters()
                  if n.endswith(('word_embeddings.weight',
                                 'position_embeddings.weight',
                                 'token_type_embeddings.weight',
                                 'predictions.bias')))
  tokens = args.batch * args.seq_len
  real = float(np.mean([(b['attention_mask'] > 0).sum() for b in host]))
  flops = model_flops(total - embedding, m['num_layers'], m['hidden_size'],
                      args.seq_len, tokens)
  return {
      'side': 'hf_torch',
      'versions': {'torch': torch.__version__,
                   'transformers': transformers.__version__},
      'backend': dev,
      'device_kind': (torch.cuda.get_device_name() if dev == 'cuda'
                      else platform.processor() or platform.machine()),
      'num_devices': 1,
      'threads': torch.get_num_threads(),
      'attn_implementation': getattr(model.config, '_attn_implementation', None),
      'model_class': cls.__name__,
      'dtype': args.dtype if autocast_dtype else 'float32',
      'params': total,
      'non_embedding_params': total - embedding,
      'tokens_per_step': tokens,
      'real_tokens_per_step': real,
      'model_flops_per_step': flops,
      'first_step_s': first_s,
      **step_stats(times, real, flops,
                   6.0 * tokens * m['hidden_size'] * m['vocab_size'],
                   args.peak_tflops, 1),
      'final_loss': loss,
      'other_processes_busy_cores': other.cores(),
      'rss_after_imports_mb': rss_imports,
      'peak_rss_mb': peak_rss_mb(),
      'device_peak_bytes': (torch.cuda.max_memory_allocated()
                            if dev == 'cuda' else None),
  }


# ----------------------------------------------------------------- parent --
