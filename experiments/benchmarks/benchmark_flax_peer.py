"""The Hugging Face Flax peer of experiments/benchmarks/benchmark_step.py.

A jitted train step of transformers' ``FlaxBertForPreTraining`` (or
``FlaxBertForMaskedLM`` for ``--objective mlm``) at the same shapes: forward
with dropout on (``train=True``), MLM cross-entropy at the host-drawn ~15%
positions (the same rule and share as the PyTorch peer, ``host_masks``) plus
NSP, ``jax.value_and_grad``, then optax global-norm clipping at 1.0 and AdamW
(eps 1e-6, weight decay 0.01 off biases and LayerNorm), with the state donated.

transformers dropped its Flax models in v5, and our tests need v5, so this
side runs in an interpreter of its own: ``benchmark_step.py --flax_python
/work/hfflax-venv/bin/python`` starts it as ``--side flax`` there (how to make
that venv: docs/benchmarks.md). It imports nothing of bert_jax beyond the
objective table, so that venv needs only jax, flax, optax, numpy and
``transformers<5``.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from benchmark_peer import host_masks
from benchmark_step import (NUM_BATCHES, OtherLoad, model_flops,  # pylint: disable=g-multiple-import
                            peak_rss_mb, step_stats, host_batches)
from bert_jax.data.pretrain import objectives


def run_flax(args) -> dict:
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  rss_imports = peak_rss_mb()
  m = json.loads(args.model_json)
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
  cls = (transformers.FlaxBertForPreTraining if sentence
         else transformers.FlaxBertForMaskedLM)
  dtype = jnp.bfloat16 if args.dtype == 'bfloat16' else jnp.float32
  model = cls(cfg, seed=args.seed, dtype=dtype)
  params = model.params

  def decay(p):
    flat = flax.traverse_util.flatten_dict(p)
    return flax.traverse_util.unflatten_dict(
        {k: not (k[-1] == 'bias' or any('LayerNorm' in n for n in k))
         for k in flat})

  tx = optax.chain(
      optax.clip_by_global_norm(1.0),
      optax.adamw(1e-4, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01,
                  mask=decay))
  opt_state = tx.init(params)

  def loss_fn(p, batch, rng):
    out = model(batch['input_ids'], attention_mask=batch['attention_mask'],
                token_type_ids=batch['token_type_ids'], params=p,
                dropout_rng=rng, train=True)
    logits = (out.prediction_logits if sentence else out.logits).astype(jnp.float32)
    labels = batch['labels']
    real = labels >= 0
    ce = optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.where(real, labels, 0))
    loss = jnp.sum(ce * real) / jnp.maximum(jnp.sum(real), 1)
    if sentence:
      loss += jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
          out.seq_relationship_logits.astype(jnp.float32),
          batch['next_sentence_label']))
    return loss

  def train_step(p, o, batch, rng, step):
    loss, grads = jax.value_and_grad(loss_fn)(p, batch,
                                              jax.random.fold_in(rng, step))
    updates, o = tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss

  step_fn = jax.jit(train_step, donate_argnums=(0, 1))
  rng = np.random.default_rng(args.seed + 1)
  host = host_batches(args, 'flax')
  batches = []
  for b in host:
    ids, labels = host_masks(b, rng, args.vocab_size, args.max_predictions)
    d = {'input_ids': ids, 'attention_mask': b['attention_mask'],
         'token_type_ids': b['token_type_ids'],
         'labels': labels.astype(np.int32)}
    if sentence:
      d['next_sentence_label'] = b['nsp_label']
    batches.append(jax.device_put(d))
  drop_rng = jax.random.key(args.seed)

  t0 = time.perf_counter()
  compiled = step_fn.lower(params, opt_state, batches[0], drop_rng, 0).compile()
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  params, opt_state, loss = compiled(params, opt_state, batches[0], drop_rng, 0)
  jax.block_until_ready(loss)
  first_s = time.perf_counter() - t0
  for i in range(args.warmup):
    params, opt_state, loss = compiled(params, opt_state,
                                       batches[(i + 1) % NUM_BATCHES],
                                       drop_rng, i + 1)
  jax.block_until_ready((params, loss))
  times = []
  with OtherLoad() as other:
    for i in range(args.steps):
      step = args.warmup + 1 + i
      t = time.perf_counter()
      params, opt_state, loss = compiled(params, opt_state,
                                         batches[step % NUM_BATCHES],
                                         drop_rng, step)
      jax.block_until_ready((params, opt_state, loss))
      times.append(time.perf_counter() - t)
  loss = float(loss)
  if not math.isfinite(loss):
    raise FloatingPointError(f'HF Flax loss is {loss} after the timed steps.')
  flat = flax.traverse_util.flatten_dict(params)
  total = sum(int(np.prod(x.shape)) for x in flat.values())
  embedding = sum(int(np.prod(x.shape)) for k, x in flat.items()
                  if k[-2] in ('word_embeddings', 'position_embeddings',
                               'token_type_embeddings')
                  or k[-2:] == ('predictions', 'bias'))
  tokens = args.batch * args.seq_len
  real = float(np.mean([(b['attention_mask'] > 0).sum() for b in host]))
  flops = model_flops(total - embedding, m['num_layers'], m['hidden_size'],
                      args.seq_len, tokens)
  devices = jax.devices()
  return {
      'side': 'hf_flax',
      'versions': {'jax': jax.__version__, 'flax': flax.__version__,
                   'optax': optax.__version__,
                   'transformers': transformers.__version__},
      'backend': jax.default_backend(),
      'device_kind': devices[0].device_kind,
      'num_devices': 1,
      'model_class': cls.__name__,
      'dtype': jnp.dtype(dtype).name,
      'params': total,
      'non_embedding_params': total - embedding,
      'tokens_per_step': tokens,
      'real_tokens_per_step': real,
      'model_flops_per_step': flops,
      'lower_and_compile_s': compile_s,
      'first_step_s': first_s,
      # HF's MLM head computes logits at all B x L positions.
      **step_stats(times, real, flops,
                   6.0 * tokens * m['hidden_size'] * m['vocab_size'],
                   args.peak_tflops, 1),
      'final_loss': loss,
      'other_processes_busy_cores': other.cores(),
      'rss_after_imports_mb': rss_imports,
      'peak_rss_mb': peak_rss_mb(),
      'device_peak_bytes': None,
  }
