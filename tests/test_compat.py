"""The private library APIs cnnlab uses (src/cnnlab/compat/) are still there and still mean
what cnnlab relies on: an upgrade that moves one fails here, by name, not mid-run."""

from __future__ import annotations

import os
import subprocess
import sys


def test_lightning_stop_flag_is_the_one_the_trainer_reports():
    import lightning as L

    from cnnlab.compat.lightning import hold_stop, release_stop

    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    connector = getattr(trainer, "_signal_connector", None)
    assert connector is not None, "Lightning's Trainer has no _signal_connector any more"
    assert isinstance(getattr(connector, "received_sigterm", None), bool), (
        "Lightning's _signal_connector has no received_sigterm flag any more"
    )
    release_stop(trainer)  # what Lightning's loops read (Trainer.received_sigterm)
    assert trainer.received_sigterm is True
    hold_stop(trainer)
    assert trainer.received_sigterm is False


def test_wandb_launch_inputs_step_is_skipped_only_when_nothing_was_staged(monkeypatch):
    import inspect

    from wandb.sdk import wandb_run

    from cnnlab.compat import wandb as compat

    compat.skip_unstaged_launch_inputs()
    compat.skip_unstaged_launch_inputs()  # idempotent: wrapped once
    wrapped = wandb_run.Run._detect_and_apply_job_inputs
    # W&B's own step (kept on the wrapper) is still the one that applies staged inputs
    assert "StagedLaunchInputs().apply" in inspect.getsource(wrapped.cnnlab_wrapped)
    from wandb.sdk.launch.inputs import internal

    applied = []
    monkeypatch.setattr(internal.StagedLaunchInputs, "apply", lambda self, run: applied.append(run))
    wrapped("run")  # the staging module is imported: W&B's step runs
    assert applied == ["run"]
    monkeypatch.delitem(sys.modules, compat.STAGED_INPUTS_MODULE)
    wrapped("another run")  # never imported: nothing can have been staged
    assert applied == ["run"]


def test_an_offline_wandb_run_does_not_import_wandbs_launch_package(tmp_path):
    code = (
        "import sys, wandb\n"
        "from cnnlab.compat.wandb import skip_unstaged_launch_inputs\n"
        "skip_unstaged_launch_inputs()\n"
        f"run = wandb.init(mode='offline', dir={str(tmp_path)!r}, settings=wandb.Settings("
        "console='off', silent=True))\n"
        "run.finish()\n"
        "print(sorted(m for m in sys.modules if m.startswith('wandb.sdk.launch')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
