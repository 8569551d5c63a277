"""Hyperparameter search on Optuna's ask/tell API, driven by a Hydra sweeper.

- :mod:`cnnlab.search.space`: Hydra sweep syntax (``interval``, ``choice``, ``range``,
  ``tag(log, ...)``) to Optuna distributions, and trial parameters back to overrides.
- :mod:`cnnlab.search.storage`: in-memory, journal-file or SQL storage; the study, resumed.
- :mod:`cnnlab.search.sweep`: the ask / launch / tell loop, shared by processes and machines.
- :mod:`cnnlab.search.pruning`: the Lightning callback a job uses to report to its trial.
- :mod:`cnnlab.search.report`: the best trial, the trials table and Optuna's plots.

The Hydra plugin itself is ``hydra_plugins.cnnlab_optuna_sweeper`` (Hydra only
instantiates plugins defined in that namespace); it only hands over to this package.
Nothing here imports Optuna at import time: Hydra imports the plugin on every run.
"""
