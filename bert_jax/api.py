"""The small public API that ``import bert_jax`` offers (docs/guide.md).

  import bert_jax
  bert = bert_jax.load_pretrained('ckpt/minilm')   # model, params, tokenizer
  enc = bert.tokenizer.encode('BERT reads both ways.')
  out = bert.model.apply({'params': bert.params}, ids_BL, types_BL, mask_BL)
  out['last_hidden_state']                          # [B, L, D]

  encoder = bert_jax.load_encoder('ckpt/minilm')    # texts in, arrays out
  bert_jax.encode_to_file(encoder, open('corpus.txt'), 'vectors.npy')
  bert_jax.convert_from_hf('hf_folder', 'ckpt/mine')
  bert_jax.finetune('runs/sst', 'task=local_classification,runlocal',
                    {'init_from': 'ckpt/minilm', 'data.train_file': 'x.tsv'})
  bert_jax.pretrain('runs/mine', 'size=tiny,runlocal',
                    {'data.corpus': 'my_text.txt'})

Each function calls what the command lines call: ``finetune`` and
``pretrain`` build the config with ``configs/finetune.py`` /
``configs/pretrain.py`` (the same ``get_config(arg)`` that ``launch.py
--config=configs/finetune.py:ARG`` reads), apply the overrides the way
``--config.FIELD=VALUE`` does (unknown fields and wrong types are errors),
and run ``bert_jax.train.phases.run``, the launcher's one library call. It
sits on top of every other layer (setup.cfg), and the package's
``__init__`` loads it only when one of these names is first used, so
``import bert_jax`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import ml_collections

from bert_jax import pretrained
from bert_jax.convert import hf
from bert_jax.encode import Encoder, encode_to_file, load_encoder
from bert_jax.errors import UserInputError
from bert_jax.models.config import ModelConfig
from bert_jax.models.encoder import BertEncoder
from bert_jax.text import load_tokenizer
from bert_jax.train import phases
from bert_jax.configs import finetune as finetune_config
from bert_jax.configs import pretrain as pretrain_config

__all__ = ['Encoder', 'Pretrained', 'convert_from_hf', 'encode_to_file',
           'finetune', 'load_encoder', 'load_pretrained', 'make_config', 'pretrain']

# make_config's KIND -> the config module launch.py would be given.
CONFIG_MODULES = {'finetune': finetune_config, 'pretrain': pretrain_config}


class Pretrained(NamedTuple):
  """A checkpoint's encoder, ready for ``model.apply({'params': params}, ...)``.

  Attributes:
    model: The ``BertEncoder`` (Hugging Face ``BertModel``'s equivalent);
      ``apply`` returns ``last_hidden_state`` [B, L, D], ``pooler_output``
      [B, D] (when the checkpoint has a pooler) and ``sequence_output``.
    params: The encoder's parameters (the checkpoint's ``'bert'`` subtree).
    tokenizer: The checkpoint's tokenizer (``bert_jax.text.Tokenizer``).
    config: Its ``ModelConfig``.
    heads: The other top-level parameter trees (task or pretraining heads,
      e.g. ``'classifier'``), empty for an encoder-only checkpoint.
  """
  model: BertEncoder
  params: dict[str, Any]
  tokenizer: Any
  config: ModelConfig
  heads: dict[str, Any]


def load_pretrained(directory: str, scan_layers: bool | None = None
                    ) -> Pretrained:
  """Loads a checkpoint directory as model + params + tokenizer.

  Args:
    directory: A bert_jax checkpoint directory (``convert_from_hf`` output,
      a pretraining or fine-tuning workdir, or a workdir's ``best/``).
    scan_layers: Re-lay the layers for ``nn.scan`` (True) or unrolled
      (False); None keeps the checkpoint's layout.

  Returns:
    A ``Pretrained``.
  """
  params, config = pretrained.load_pretrained(directory, scan_layers)
  if 'bert' not in params:
    raise UserInputError(f'{directory!r} holds no encoder ("bert") params; '
                         f'its top-level keys are {sorted(params)}.')
  tokenizer = load_tokenizer(pretrained.tokenizer_dir(directory))
  encoder = params['bert']
  model = BertEncoder(config, add_pooler='pooler' in encoder)
  heads = {k: v for k, v in params.items() if k != 'bert'}
  return Pretrained(model, encoder, tokenizer, config, heads)


def convert_from_hf(src: str, dst: str, scan_layers: bool = False
                    ) -> ModelConfig:
  """``python -m bert_jax.convert from-hf SRC DST``: returns the ModelConfig."""
  _, config = hf.from_hf(src, dst, scan_layers=scan_layers)
  return config


def _override(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """Sets the dotted field KEY as ``--config.KEY=VALUE`` would."""
  node, path = config, key.split('.')
  for i, part in enumerate(path):
    where = '.'.join(path[:i]) or 'the config'
    if not isinstance(node, ml_collections.ConfigDict):
      raise UserInputError(f'Unknown config field {key!r}: {where} is a '
                           'field, not a group of fields.')
    if part not in node:
      raise UserInputError(f'Unknown config field {key!r}: {where} has no '
                           f'{part!r}; its fields are {sorted(node.keys())}.')
    if i < len(path) - 1:
      node = node[part]
  try:
    node[path[-1]] = value
  except (TypeError, ValueError) as e:
    raise UserInputError(f'Config field {key}={value!r}: {e}') from e


def make_config(kind: str, arg: str = '',
                overrides: Mapping[str, Any] | None = None
                ) -> ml_collections.ConfigDict:
  """The config ``launch.py --config=configs/KIND.py:ARG --config.K=V`` gets.

  Args:
    kind: 'finetune' or 'pretrain'.
    arg: The config argument, e.g. 'task=sst2,runlocal' or 'size=tiny'.
    overrides: Dotted field -> value, e.g. ``{'optim.learning_rate': 2e-5}``.

  Returns:
    The locked ConfigDict (no new fields can be added).

  Raises:
    UserInputError: An unknown kind, argument or field, or a wrong type.
  """
  if kind not in CONFIG_MODULES:
    raise UserInputError(f'make_config kind={kind!r}; choose one of '
                         f'{sorted(CONFIG_MODULES)}.')
  try:
    config = CONFIG_MODULES[kind].get_config(arg or None)
  except ValueError as e:
    raise UserInputError(f'configs/{kind}.py:{arg}: {e}') from e
  config.lock()  # As launch.py's lock_config=True: typos cannot add fields.
  for key, value in (overrides or {}).items():
    _override(config, key, value)
  return config


def finetune(workdir: str, arg: str = 'task=local_classification',
             overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Fine-tunes as ``launch.py --config=configs/finetune.py:ARG`` does.

  Args:
    workdir: Where checkpoints, ``best/``, metrics and predictions go; a
      workdir with checkpoints resumes.
    arg: ``configs/finetune.py``'s argument: ``task=NAME`` [``,size=S``]
      [``,runlocal``].
    overrides: Dotted config fields, e.g. ``{'init_from': 'ckpt/minilm',
      'data.train_file': 'train.tsv', 'train.num_epochs': 3}``.

  Returns:
    The run's results (what ``WORKDIR/eval_results.json`` holds).
  """
  return phases.run(make_config('finetune', arg, overrides), workdir)


def pretrain(workdir: str, arg: str = 'size=tiny,runlocal',
             overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """Pretrains as ``launch.py --config=configs/pretrain.py:ARG`` does.

  Args:
    workdir: The run's workdir; afterwards a checkpoint directory for
      ``load_pretrained``, ``load_encoder`` and fine-tuning's ``init_from``.
    arg: ``configs/pretrain.py``'s argument, e.g. ``size=tiny,runlocal``.
    overrides: Dotted config fields, e.g. ``{'data.corpus': 'my.txt'}``.

  Returns:
    The run's results (what ``WORKDIR/eval_results.json`` holds).
  """
  return phases.run(make_config('pretrain', arg, overrides), workdir)
