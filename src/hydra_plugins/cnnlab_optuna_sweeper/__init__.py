"""cnnlab's Optuna sweeper, as a Hydra plugin (``hydra/sweeper=cnnlab_optuna``)."""
