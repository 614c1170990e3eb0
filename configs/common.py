"""Thin: the config lives in ``bert_jax/configs/common.py`` (shipped with the package)."""

from bert_jax.configs.common import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import
