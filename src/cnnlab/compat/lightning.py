"""Lightning internals cnnlab needs, in one place.

- ``hold_stop`` / ``release_stop``: a SIGTERM (or Ctrl-C) that arrives during a fit's
  validation is held until that validation ends, so the stop checkpoint keeps both the
  epoch's training and its validation (``CheckpointOnStop``). Lightning reads its own
  flag, ``trainer._signal_connector.received_sigterm``, after each validation batch and
  offers no public way to defer it; ``Trainer.received_sigterm`` is a read-only property.

Tested with lightning 2.6.
"""

from __future__ import annotations

from typing import Any

__all__ = ["hold_stop", "release_stop"]


def hold_stop(trainer: Any) -> None:
    """Clear the stop Lightning noted, so its loop does not act on it yet."""
    trainer._signal_connector.received_sigterm = False


def release_stop(trainer: Any) -> None:
    """Note the stop again: Lightning's loop stops at its next check."""
    trainer._signal_connector.received_sigterm = True
