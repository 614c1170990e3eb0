"""Thin: the config lives in ``bert_jax/configs/finetune.py`` (shipped with the package)."""

from bert_jax.configs.finetune import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
from bert_jax.configs.finetune import get_config  # noqa: F401
