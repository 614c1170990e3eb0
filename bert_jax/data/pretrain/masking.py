"""Dynamic masking for masked language modelling, on device.

`mask_tokens` runs inside the jitted train step with the step's RNG, so every
epoch sees new masks and the host pipeline only ships unmasked examples. All
shapes are static: a row gets at most P predictions, and unused prediction
slots are padding (position 0, label 0, weight 0), which the loss ignores and
the sparse MLM head gathers harmlessly.

The choice follows the original BERT's `create_masked_lm_predictions`: a row
of n real tokens, [CLS] and [SEP] included, gets `round(n * mask_rate)`
predictions (at least 1, at most P, and no more than it has candidates),
positions uniform among its non-special tokens (or whole words,
`whole_word=True`), and of them 80% become [MASK], 10% a random token, 10%
stay as they are.

Where it still differs from the original, and why:

* Candidates exclude every special id the caller passes, [UNK] included; the
  original excludes only [CLS] and [SEP], so it sometimes asks the model to
  predict [UNK], a target that carries no information about the text.
* Random replacements are drawn uniformly from the tokenizer's non-special
  ids; the original draws from the whole vocabulary, specials included. It
  must be the tokenizer's vocabulary, not the model's: a model's embedding
  table may be padded (to a multiple of 128, say) with ids no text ever has.
* Masks are drawn on device at every step (dynamic masking, as RoBERTa), not
  once per `dupe_factor` copy when the data is written.

Shapes: B = batch, L = sequence length, P = max_predictions.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def mask_tokens(rng: jax.Array,
                input_ids_BL: jax.Array,
                attention_mask_BL: jax.Array,
                word_ids_BL: jax.Array,
                *,
                mask_rate: float = 0.15,
                max_predictions: int = 20,
                mask_id: int,
                vocab_size: int,
                special_ids: Sequence[int],
                whole_word: bool = False,
                replace_prob: float = 0.8,
                random_prob: float = 0.1) -> dict[str, jax.Array]:
  """Chooses and corrupts the positions the model must predict.

  Args:
    rng: A PRNG key; fold the step into it so each step masks differently.
    input_ids_BL: Token ids.
    attention_mask_BL: 1 for real tokens, 0 for padding.
    word_ids_BL: Word index per token, unique within a row, -1 for specials
      and padding; only read when `whole_word`.
    mask_rate: Fraction of a row's real tokens (specials included, as the
      original counts them) to predict.
    max_predictions: P, the most predictions per row (static).
    mask_id: Id of [MASK].
    vocab_size: The tokenizer's vocabulary size: random replacements are
      drawn below it (special ids excluded). Not the model's, which may be
      padded with ids no text has.
    special_ids: Ids never chosen for prediction and never drawn as random
      replacements. Must include padding, [CLS], [SEP] and [MASK].
    whole_word: Choose whole words and predict all their tokens. A word that
      would overflow the row's budget is skipped (as BERT does), and so are the
      words ranked after it (a vectorised shortcut), so a row may get slightly
      fewer predictions than the budget.
    replace_prob: Of the chosen positions, the fraction set to [MASK].
    random_prob: The fraction set to a random non-special token; the rest keep
      their token.

  Returns:
    `masked_ids_BL` (int32, the corrupted inputs), `positions_BP` (int32,
    ascending, padding slots 0), `labels_BP` (int32 original ids, 0 in padding
    slots) and `weights_BP` (float32, 1 for a real prediction, 0 for padding).

  Raises:
    ValueError: On bad static arguments (they name the value).
  """
  batch, length = input_ids_BL.shape
  specials = sorted({int(s) for s in special_ids})
  _check_args(length, mask_rate, max_predictions, mask_id, vocab_size,
              specials, replace_prob, random_prob)
  rng_choose, rng_action, rng_random = jax.random.split(rng, 3)
  input_ids_BL = input_ids_BL.astype(jnp.int32)

  is_candidate_BL = attention_mask_BL.astype(bool)
  for s in specials:
    is_candidate_BL &= input_ids_BL != s
  num_candidates_B = is_candidate_BL.sum(axis=1)
  # The original's budget counts every token of the example, [CLS] and [SEP]
  # included. A table of Python's round(n * mask_rate) (double precision,
  # half to even) gives its exact counts: float32 on device would round
  # 190 * 0.15 up to 29 where the original gets 28.
  budget_N = np.asarray([min(max_predictions, max(1, round(n * mask_rate)))
                         for n in range(length + 1)], np.int32)
  num_tokens_B = attention_mask_BL.astype(bool).sum(axis=1)
  budget_B = jnp.minimum(jnp.asarray(budget_N)[num_tokens_B], num_candidates_B)

  if whole_word:
    chosen_BL = _choose_whole_words(rng_choose, is_candidate_BL, word_ids_BL,
                                    budget_B)
  else:
    chosen_BL = _choose_tokens(rng_choose, is_candidate_BL, budget_B,
                               max_predictions)

  # Decide per token, not per slot, so the corruption is a plain `where` and
  # padding slots (which all point at position 0) can never write anything.
  action_BL = jax.random.uniform(rng_action, (batch, length))
  random_ids_BL = _random_non_special(rng_random, (batch, length), vocab_size,
                                      specials)
  masked_ids_BL = jnp.where(
      chosen_BL & (action_BL < replace_prob), mask_id,
      jnp.where(chosen_BL & (action_BL < replace_prob + random_prob),
                random_ids_BL, input_ids_BL))

  # The P chosen positions in ascending order: chosen tokens sort by position,
  # the rest after them (keys >= L); top_k of the negated keys takes them.
  position_L = jnp.arange(length, dtype=jnp.int32)
  key_BL = jnp.where(chosen_BL, position_L, length + position_L)
  neg_key_BP, _ = jax.lax.top_k(-key_BL, max_predictions)
  key_BP = -neg_key_BP
  is_real_BP = key_BP < length
  positions_BP = jnp.where(is_real_BP, key_BP, 0).astype(jnp.int32)
  labels_BP = jnp.where(
      is_real_BP, jnp.take_along_axis(input_ids_BL, positions_BP, axis=1), 0)
  return {
      'masked_ids_BL': masked_ids_BL.astype(jnp.int32),
      'positions_BP': positions_BP,
      'labels_BP': labels_BP.astype(jnp.int32),
      'weights_BP': is_real_BP.astype(jnp.float32),
  }


def _check_args(length, mask_rate, max_predictions, mask_id, vocab_size,
                specials, replace_prob, random_prob):
  if not 0.0 < mask_rate <= 1.0:
    raise ValueError(f'mask_rate must be in (0, 1], got {mask_rate}')
  if not 1 <= max_predictions <= length:
    raise ValueError(f'max_predictions={max_predictions} must be in '
                     f'[1, sequence length {length}]')
  if not 0 <= mask_id < vocab_size:
    raise ValueError(f'mask_id={mask_id} is outside [0, vocab_size='
                     f'{vocab_size})')
  bad = [s for s in specials if not 0 <= s < vocab_size]
  if bad:
    raise ValueError(f'special_ids {bad} are outside [0, vocab_size='
                     f'{vocab_size})')
  if len(specials) >= vocab_size:
    raise ValueError(f'all {vocab_size} ids are special: no random token left')
  if not (0.0 <= replace_prob and 0.0 <= random_prob and
          replace_prob + random_prob <= 1.0):
    raise ValueError(f'need replace_prob ({replace_prob}) and random_prob '
                     f'({random_prob}) >= 0 with a sum <= 1')


def _choose_tokens(rng, is_candidate_BL, budget_B, max_predictions):
  """Marks `budget` candidates per row, uniformly at random."""
  score_BL = jnp.where(is_candidate_BL,
                       jax.random.uniform(rng, is_candidate_BL.shape),
                       -jnp.inf)
  _, index_BP = jax.lax.top_k(score_BL, max_predictions)
  keep_BP = jnp.arange(max_predictions) < budget_B[:, None]
  batch_index_B1 = jnp.arange(score_BL.shape[0])[:, None]
  # top_k's indices within a row are distinct, so no write can undo another.
  return jnp.zeros_like(is_candidate_BL).at[batch_index_B1, index_BP].set(
      keep_BP)


def _choose_whole_words(rng, is_candidate_BL, word_ids_BL, budget_B):
  """Marks whole words, in random order, while their tokens fit the budget."""
  batch, length = is_candidate_BL.shape
  position_L = jnp.arange(length)
  # Word slots 0..L-1 are real words; a candidate token without a word (-1)
  # gets a slot of its own at L + position, so it is chosen like a word of one.
  word_BL = jnp.where(word_ids_BL >= 0, jnp.clip(word_ids_BL, 0, length - 1),
                      length + position_L)
  batch_index_B1 = jnp.arange(batch)[:, None]
  # W = 2L word slots per row.
  tokens_BW = jnp.zeros((batch, 2 * length), jnp.int32).at[
      batch_index_B1, word_BL].add(is_candidate_BL.astype(jnp.int32))
  score_BW = jnp.where(tokens_BW > 0,
                       jax.random.uniform(rng, tokens_BW.shape), jnp.inf)
  order_BW = jnp.argsort(score_BW, axis=1)
  # Tokens used once each word in random order has been taken; a word is kept
  # while that running total stays within the budget.
  used_BW = jnp.cumsum(jnp.take_along_axis(tokens_BW, order_BW, axis=1),
                       axis=1)
  keep_sorted_BW = used_BW <= budget_B[:, None]
  keep_BW = jnp.zeros_like(keep_sorted_BW).at[batch_index_B1, order_BW].set(
      keep_sorted_BW) & (tokens_BW > 0)
  return is_candidate_BL & jnp.take_along_axis(keep_BW, word_BL, axis=1)


def _random_non_special(rng, shape, vocab_size, specials):
  """Ids uniform over [0, vocab_size) minus the (sorted) special ids."""
  r = jax.random.randint(rng, shape, 0, vocab_size - len(specials),
                         dtype=jnp.int32)
  # Shifting past each special in ascending order maps 0.. onto the ids that
  # are not special, one to one.
  for s in specials:
    r = r + (r >= s).astype(jnp.int32)
  return r
