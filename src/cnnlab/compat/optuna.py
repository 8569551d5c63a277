"""Optuna's ids and a study's storage, which its public API does not expose.

Optuna's public storage API (``BaseStorage.get_study_system_attrs``, ``set_trial_state_values``,
``set_trial_system_attr``, ...) takes study and trial ids, but neither ``Study``, ``Trial`` nor
``FrozenTrial`` has a public id, and a loaded ``Study`` no public storage; Optuna's own
integrations read the same attributes. Tested with optuna 5.0.0 (the one installable here).
"""

from __future__ import annotations

from typing import Any


def storage(study: Any) -> Any:
    """The storage a study reads and writes (``optuna.storages.BaseStorage``)."""
    return study._storage


def study_id(study: Any) -> int:
    return study._study_id


def trial_id(trial: Any) -> int:
    """The storage id of a ``Trial`` or ``FrozenTrial``."""
    return trial._trial_id
