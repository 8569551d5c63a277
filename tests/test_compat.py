"""The private library APIs cnnlab uses (src/cnnlab/compat/) are still there and still mean
what cnnlab relies on: an upgrade that moves one fails here, by name, not mid-run."""

from __future__ import annotations


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
