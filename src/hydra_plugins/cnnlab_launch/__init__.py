"""cnnlab's Hydra plugins: a sweeper that never sinks a sweep on one job, a SLURM launcher
that watches its jobs (see cnnlab.launch for the logic they share)."""
