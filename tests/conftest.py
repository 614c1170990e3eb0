"""Test set-up: 8 fake CPU devices and cheap compiles (tests/xla_env.py), set
before jax is imported anywhere."""
import os

from tests import xla_env

os.environ.setdefault('XLA_FLAGS', xla_env.DEFAULT)
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
