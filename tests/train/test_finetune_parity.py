"""Fine-tuning recipe parity: bert_jax's train step against the torch peer's.

The same converted weights (classifier included), the same batches, dropout
off: bert_jax's jitted train step (``configs/finetune.py``'s AdamW, warmup,
linear decay, clipping, weight-decay mask, mean cross-entropy) and the peer's
loop (``experiments/benchmarks/finetune_peer.py``: torch AdamW without decay on biases
and LayerNorm weights, ``get_linear_schedule_with_warmup``, clipping) must
end at the same parameters. A difference in any of them (eps, which
parameters decay, the warmup step count, the step the schedule starts at,
the clipping, the loss reduction) moves the parameters apart: the learning
rate and weight decay are raised so that each shows well above the tolerance.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bert_jax.convert import hf
from bert_jax.tasks.classification import ClassificationTask
from bert_jax.train import optim
from bert_jax.train import step as step_lib
from bert_jax.configs import finetune
from tests.convert.conftest import write_tiny_vocab

torch = pytest.importorskip('torch')
transformers = pytest.importorskip('transformers')
finetune_peer = pytest.importorskip('experiments.benchmarks.finetune_peer')

STEPS, WARMUP_FRACTION = 5, 0.4  # Warmup: 2 steps, then 3 of decay.
LR, WEIGHT_DECAY = 2e-2, 0.5


def _batches(rng):
  # Rows of different lengths, zero-padded as the tokenizer pads them.
  out = []
  for _ in range(STEPS):
    lengths = rng.integers(3, 9, size=4)
    ids = np.zeros((4, 8), np.int32)
    for r, n in enumerate(lengths):
      ids[r, :n] = rng.integers(5, 23, size=n)
      ids[r, 0], ids[r, n - 1] = 2, 3
    out.append({'input_ids': ids, 'token_type_ids': np.zeros_like(ids),
                'attention_mask': (ids > 0).astype(np.int32),
                'label': rng.integers(0, 3, size=4).astype(np.int32),
                'weight': np.ones((4,), np.float32)})
  return out


def test_train_steps_match_the_torch_peer(tmp_path):
  src = str(tmp_path / 'hf')
  write_tiny_vocab(src)
  torch.manual_seed(0)
  hf_config = transformers.BertConfig(
      vocab_size=23, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=64, max_position_embeddings=16, num_labels=3,
      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  peer = transformers.BertForSequenceClassification(hf_config)
  peer.save_pretrained(src)
  params, config, kind = hf.params_from_hf(src)
  assert kind == 'sequence_classification' and 'classifier' in params
  config = config.replace(hidden_dropout=0.0, attention_dropout=0.0)

  cfg = finetune.get_config('task=local_classification')
  cfg.optim.learning_rate, cfg.optim.weight_decay = LR, WEIGHT_DECAY
  cfg.optim.warmup_fraction = WARMUP_FRACTION
  task = ClassificationTask('local_classification', cfg.data, None, config,
                            train=[], evals={}, label_names=('a', 'b', 'c'))
  tx, schedule = optim.make_optimizer(cfg.optim, STEPS)
  step = jax.jit(step_lib.make_train_step(task, tx, schedule, 1))
  state = step_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                              opt_state=tx.init(params))

  optimizer, scheduler = finetune_peer.make_optimizer(
      peer, LR, WEIGHT_DECAY, cfg.optim.eps, WARMUP_FRACTION, STEPS)
  peer.train()
  losses = []
  for batch in _batches(np.random.default_rng(0)):
    state, metrics = step(state, batch, jax.random.key(0))
    enc = {k: torch.from_numpy(batch[k]).long() for k in (
        'input_ids', 'token_type_ids', 'attention_mask')}
    peer_loss = finetune_peer.train_step(
        peer, enc, torch.from_numpy(batch['label']).long(), optimizer,
        scheduler)
    losses.append((float(metrics['loss']), peer_loss))
  ours_loss, peer_losses = np.array(losses).T
  np.testing.assert_allclose(ours_loss, peer_losses, rtol=1e-4)

  final, _ = hf.hf_weights_from_params(jax.device_get(state.params), config)
  start, _ = hf.hf_weights_from_params(params, config)
  theirs = {k: v.detach().numpy() for k, v in peer.state_dict().items()}
  moved = 0.0
  for name, ours in final.items():
    np.testing.assert_allclose(ours, theirs[name], atol=2e-5, err_msg=name)
    moved = max(moved, float(np.abs(ours - np.asarray(start[name])).max()))
  assert moved > 1e-2  # The steps did move the weights.
