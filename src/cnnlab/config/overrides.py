"""Hydra override strings (``+model.net.dropout=0.5``): their keys and values, in one place.

A key never holds ``=`` (Hydra's grammar), so the first ``=`` ends it; ``+``, ``++`` and
``~`` say how the key is changed, not which key it is.
"""

from __future__ import annotations

from collections.abc import Iterable

# how a run is continued, skipped or reported to a search, not what it is: never part of
# which run (rundir) or which arm of a study (cnnlab-compare) it is
NOT_RUN_KEYS = ("resume", "ckpt_path", "skip_completed", "search")
# Hydra's sweeper writes booleans and null as Python does; configs and users write these
_PYTHON_WORDS = {"True": "true", "False": "false", "None": "null"}


def key_of(override: str) -> str:
    return str(override).split("=", 1)[0].lstrip("+~")


def value_of(override: str) -> str:
    """The value as configs write it (``false``, not ``False``); '' for a deletion."""
    value = str(override).partition("=")[2]
    return _PYTHON_WORDS.get(value, value)


def as_dict(overrides: Iterable[str]) -> dict[str, str]:
    return {key_of(o): value_of(o) for o in overrides}


def without(overrides: Iterable[str], keys: Iterable[str]) -> list[str]:
    drop = set(keys)
    return [o for o in overrides if key_of(o) not in drop]


def merged(saved: Iterable[str], extra: Iterable[str]) -> list[str]:
    """The saved overrides, with any key given again in ``extra`` replaced by it."""
    extra = list(extra)
    return without(saved, (key_of(o) for o in extra)) + extra
