r"""Entry point for a checkout: the same as ``python -m bert_jax.launch`` and the
installed ``bert-jax`` script (bert_jax/launch.py holds the code).

  python launch.py --config=configs/pretrain.py:size=tiny,runlocal --workdir=/tmp/run

Any config field can be overridden: ``--config.optim.learning_rate=5e-4``.
"""

from bert_jax.launch import run

if __name__ == '__main__':
  run()
