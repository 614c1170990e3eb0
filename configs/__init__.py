"""Thin files for a checkout: the configs live in ``bert_jax/configs/``.

They ship with the package there; each file here forwards to its namesake so
that ``python launch.py --config=configs/pretrain.py:ARG`` and
``from configs import pretrain`` keep working from a checkout. New code
imports ``bert_jax.configs``.
"""
