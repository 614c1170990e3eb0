"""The experiment machinery: sweeps, studies, HP search with k-fold, trial
records, statistics, plots, reports, launchers.

Library code a researcher runs for their own experiments (the definitions
live in the checkout's ``experiments/``: ``sweeps/``, ``studies/``):

  python -m bert_jax.lab.sweep --sweep experiments/sweeps/variants.py --root /tmp/variants
  python -m bert_jax.lab.report /tmp/variants
  python -m bert_jax.lab.study --study experiments/studies/variants.py --root /tmp/study
  python -m bert_jax.lab.hpsearch --root /tmp/hp --kfold 5 ...

Each trial is one ``launch.py`` run in its own workdir (``trials``); ``launchers``
runs them locally (N at once, one GPU set each) or as a SLURM array;
``search_space`` builds grids and random draws; ``kfold`` the folds;
``aggregate``/``stats`` the means, intervals and noise rule; ``plots``,
``report`` and ``study_report`` the figures and markdown.

It sits on top of the layers (setup.cfg), beside ``bert_jax.api``: it reads
configs and the built-in data, and runs the trainer only through ``launch.py``
subprocesses.
"""
