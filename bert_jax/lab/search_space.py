"""Hyper-parameter spaces: grids, random draws, and named spaces.

  --grid optim.learning_rate=5e-5,3e-5,2e-5 --grid train.global_batch_size=16,32
      every combination (6 settings), in the order given;
  --random 8 --dist optim.learning_rate=loguniform:1e-5:1e-3 \
      --dist train.num_epochs=choice:2,3,4 --dist model.hidden_dropout=uniform:0:0.2
      8 distinct settings drawn with --search_seed (grid fields join as
      choices);
  --space bert_paper
      the BERT paper's fine-tuning grid (Devlin et al. 2019, appendix A.3):
      learning rate 5e-5 / 3e-5 / 2e-5, batch 16 / 32, epochs 2 / 3 / 4.

A setting is a flat override dict, the same shape as a sweep entry.
"""

from __future__ import annotations

import ast
import itertools
import math
import random
import re
from typing import Any

# Named spaces: field -> values (a grid).
SPACES: dict[str, dict[str, list[Any]]] = {
    'bert_paper': {
        'optim.learning_rate': [5e-5, 3e-5, 2e-5],
        'train.global_batch_size': [16, 32],
        'train.num_epochs': [2.0, 3.0, 4.0],
    },
}

DISTRIBUTIONS = ('choice', 'uniform', 'loguniform')


class SpaceError(ValueError):
  """A search space that cannot be built; the message names the flag."""


def parse_value(text: str) -> Any:
  """'5e-5' -> 5e-05, '16' -> 16, 'True' -> True, 'rope' -> 'rope'."""
  text = text.strip()
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _field(item: str, flag: str) -> tuple[str, str]:
  key, sep, rest = item.partition('=')
  key = key.strip().removeprefix('--').removeprefix('config.')
  if not sep or not re.fullmatch(r'[A-Za-z_]\w*(\.\w+)*', key) or not rest.strip():
    raise SpaceError(f'{flag} {item!r}: expected FIELD=..., e.g. '
                     f'{"optim.learning_rate=5e-5,3e-5" if flag == "--grid" else "optim.learning_rate=loguniform:1e-5:1e-3"}.')
  return key, rest


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
  """['optim.learning_rate=5e-5,3e-5'] -> {'optim.learning_rate': [5e-5, 3e-5]}."""
  grid: dict[str, list[Any]] = {}
  for item in items:
    key, rest = _field(item, '--grid')
    if key in grid:
      raise SpaceError(f'--grid {key} is given twice.')
    values = [parse_value(v) for v in rest.split(',') if v.strip()]
    if len(set(map(repr, values))) != len(values):
      raise SpaceError(f'--grid {item!r} repeats a value.')
    grid[key] = values
  return grid


def parse_dists(items: list[str]) -> dict[str, tuple[str, list[Any]]]:
  """['f=loguniform:1e-5:1e-3'] -> {'f': ('loguniform', [1e-5, 1e-3])}."""
  out: dict[str, tuple[str, list[Any]]] = {}
  for item in items:
    key, rest = _field(item, '--dist')
    kind, _, args = rest.partition(':')
    kind = kind.strip()
    if kind not in DISTRIBUTIONS:
      raise SpaceError(f'--dist {item!r}: unknown distribution {kind!r}; choose one '
                       f'of {DISTRIBUTIONS} (choice:A,B,C uniform:LO:HI '
                       'loguniform:LO:HI).')
    if kind == 'choice':
      values = [parse_value(v) for v in args.split(',') if v.strip()]
      if not values:
        raise SpaceError(f'--dist {item!r}: choice needs values, e.g. choice:2,3,4.')
    else:
      try:
        values = [float(v) for v in args.split(':')]
      except ValueError:
        values = []
      if len(values) != 2 or not values[0] < values[1] or (
          kind == 'loguniform' and values[0] <= 0):
        raise SpaceError(f'--dist {item!r}: {kind} needs LO:HI with LO < HI'
                         f'{" and LO > 0" if kind == "loguniform" else ""}.')
    out[key] = (kind, values)
  return out


def grid_settings(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
  """Every combination, the first field varying slowest."""
  keys = list(grid)
  return [dict(zip(keys, combo)) for combo in itertools.product(*grid.values())]


def _draw(rng: random.Random, kind: str, args: list[Any]) -> Any:
  if kind == 'choice':
    return args[rng.randrange(len(args))]
  lo, hi = args
  if kind == 'uniform':
    value = rng.uniform(lo, hi)
  else:
    value = math.exp(rng.uniform(math.log(lo), math.log(hi)))
  return float(f'{value:.3g}')  # Readable names; finer steps mean nothing here.


def random_settings(n: int, dists: dict[str, tuple[str, list[Any]]],
                    seed: int = 0) -> list[dict[str, Any]]:
  """N distinct settings drawn from DISTS (deterministic in SEED)."""
  if n < 1:
    raise SpaceError(f'--random {n}: need at least 1 setting.')
  if not dists:
    raise SpaceError('--random needs distributions: --dist FIELD=KIND:ARGS (or '
                     '--grid / --space fields, drawn as choices).')
  finite = all(kind == 'choice' for kind, _ in dists.values())
  if finite:
    size = math.prod(len(args) for _, args in dists.values())
    if n > size:
      raise SpaceError(f'--random {n}: the space has only {size} distinct '
                       'settings; use --grid for all of them.')
  rng = random.Random(seed)
  out, seen = [], set()
  for _ in range(1000 * n):
    setting = {k: _draw(rng, kind, args) for k, (kind, args) in dists.items()}
    key = repr(sorted(setting.items()))
    if key not in seen:  # A repeat adds no information (seeds measure noise).
      seen.add(key)
      out.append(setting)
      if len(out) == n:
        return out
  raise SpaceError(f'--random {n}: could not draw {n} distinct settings.')


def settings_from_args(space: str, grid_items: list[str], random_n: int,
                       dist_items: list[str], seed: int) -> list[dict[str, Any]]:
  """The settings the --space / --grid / --random / --dist flags ask for ([] = none)."""
  grid: dict[str, list[Any]] = {}
  if space:
    if space not in SPACES:
      raise SpaceError(f'--space {space!r}: unknown; named spaces: {sorted(SPACES)}.')
    grid.update(SPACES[space])
  for key, values in parse_grid(grid_items).items():
    grid[key] = values  # --grid refines a named space's field.
  dists = parse_dists(dist_items)
  if random_n:
    both = {k: ('choice', v) for k, v in grid.items()}
    both.update(dists)
    return random_settings(random_n, both, seed)
  if dists:
    raise SpaceError('--dist without --random N: say how many settings to draw.')
  return grid_settings(grid) if grid else []
