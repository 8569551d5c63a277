"""W&B internals cnnlab touches, in one place.

- ``skip_unstaged_launch_inputs``: every ``wandb.init`` ends by applying the inputs that
  W&B Launch's ``wandb.launch.manage_config_file``/``manage_wandb_config`` staged before
  it (``Run._detect_and_apply_job_inputs``). To find none it imports W&B's Launch package,
  its public API and pydantic models: ~0.5 s of the first run of every process on a 2-core
  CPU (bench_fixed_cost.py's first run), for nothing unless Launch is in use. Inputs can
  only have been staged through ``wandb.sdk.launch.inputs.internal``; while that module was
  never imported there are none, and the step is skipped. Once it is imported (Launch in
  use), W&B's own step runs as before. No W&B setting turns the step off.

Tested with wandb 0.31.0; a W&B without the method is left as it is.
"""

from __future__ import annotations

import sys

__all__ = ["skip_unstaged_launch_inputs"]

STAGED_INPUTS_MODULE = "wandb.sdk.launch.inputs.internal"


def skip_unstaged_launch_inputs() -> None:
    from wandb.sdk import wandb_run

    run_class = wandb_run.Run
    apply = getattr(run_class, "_detect_and_apply_job_inputs", None)
    if apply is None or getattr(apply, "cnnlab_wrapped", False):
        return

    def detect_and_apply_job_inputs(self) -> None:
        if STAGED_INPUTS_MODULE in sys.modules:
            apply(self)

    detect_and_apply_job_inputs.cnnlab_wrapped = apply  # type: ignore[attr-defined]
    run_class._detect_and_apply_job_inputs = detect_and_apply_job_inputs  # type: ignore[method-assign]
