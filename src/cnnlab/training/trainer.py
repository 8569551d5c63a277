"""Lightning's Trainer, refusing at construction the values it would only trip on later.

Lightning accepts ``max_epochs="ten"`` or ``log_every_n_steps=-5`` and fails (or silently
does something odd) once training has started; here the arguments cnnlab's configs set
are checked first: each against the type Lightning's own signature gives it (strictly: a
string is not a number, 1 is not ``true``) and then against cnnlab's range for it. An
argument Lightning's Trainer does not have is refused by name; the rest go to Lightning
unchanged. Nothing is re-declared, so a Lightning upgrade that renames or retypes an
argument is seen here (tests/test_validation.py checks every rule still names one).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import lightning as L
from pydantic import ConfigDict, TypeAdapter, ValidationError

from cnnlab.errors import ArgumentError, require

try:  # the annotations as types, should Lightning write them as strings
    SIGNATURE = inspect.signature(L.Trainer.__init__, eval_str=True).parameters
except Exception:  # noqa: BLE001 - an annotation that only resolves for type checkers
    SIGNATURE = inspect.signature(L.Trainer.__init__).parameters
ARGUMENTS = {name for name, p in SIGNATURE.items() if p.kind is p.KEYWORD_ONLY}

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
BATCHES = "null, a number of batches >= 0, or a fraction of the split in [0, 1]"


def _batches(v: Any) -> bool:
    return v is None or (v >= 0 if isinstance(v, int) else 0 <= v <= 1)


# cnnlab's ranges for the arguments its configs set: (allowed, the text the user reads);
# a value of the wrong type reads the same text (or pydantic's, where none is given)
RULES: dict[str, tuple[Callable[[Any], bool] | None, str | None]] = {
    "accelerator": (
        lambda v: v in ACCELERATORS,
        "must be " + ", ".join(repr(a) for a in ACCELERATORS[:-1]) + f" or {ACCELERATORS[-1]!r}",
    ),
    "max_epochs": (lambda v: v >= 1, "an integer >= 1"),
    "min_epochs": (lambda v: v >= 0, "an integer >= 0"),
    "check_val_every_n_epoch": (lambda v: v >= 1, "an integer >= 1"),
    "log_every_n_steps": (lambda v: v >= 1, "an integer >= 1"),
    "num_sanity_val_steps": (
        lambda v: v >= -1,
        "an integer >= -1 (-1: the whole validation split)",
    ),
    "gradient_clip_val": (lambda v: v is None or v >= 0, "null or a number >= 0"),
    "accumulate_grad_batches": (lambda v: v >= 1, "an integer >= 1"),
    "val_check_interval": (
        lambda v: v is None or (v >= 1 if isinstance(v, int) else 0 < v <= 1),
        "null, a number of training batches >= 1, or a fraction of the epoch in (0, 1]",
    ),
    "limit_train_batches": (_batches, BATCHES),
    "limit_val_batches": (_batches, BATCHES),
    "limit_test_batches": (_batches, BATCHES),
    "deterministic": (lambda v: v is not None, "true, false or 'warn'"),
    "benchmark": (None, None),
}
# where a config deletes the key (conf/trainer/default.yaml sets every one of these)
DEFAULTS = {"max_epochs": 10, "min_epochs": 1, "num_sanity_val_steps": 1, "deterministic": "warn"}

_STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)
_TYPES = {name: TypeAdapter(SIGNATURE[name].annotation, config=_STRICT) for name in RULES}


def check(values: dict[str, Any]) -> None:
    """Raise ArgumentError for the first argument Lightning's Trainer lacks, or the first
    value of a wrong type or out of cnnlab's range."""
    for name, value in values.items():
        if name not in ARGUMENTS:
            raise ArgumentError(
                name, value, f"not an argument of Lightning {L.__version__}'s Trainer"
            )
        if name not in RULES:
            continue
        ok, allowed = RULES[name]
        try:
            _TYPES[name].validate_python(value)
        except ValidationError as err:
            shown = err.errors()[0]["msg"].replace("Input should be", "must be")
            raise ArgumentError(name, value, allowed or shown) from None
        if ok is not None:
            require(name, value, ok, allowed or "")
    require(
        "min_epochs",
        values["min_epochs"],
        lambda v: v <= values["max_epochs"],
        f"at most trainer.max_epochs ({values['max_epochs']})",
    )
    strategy = values.get("strategy", "auto")
    if device_count(values.get("devices", 1)) > 1 and not (
        isinstance(strategy, str)
        and strategy.startswith("ddp")
        and values.get("use_distributed_sampler") is False
    ):
        raise ArgumentError(
            "devices",
            values["devices"],
            "1, or with trainer=ddp more (its DDP strategy with cnnlab's own batch sampler, "
            "which shards the data by rank; Lightning's distributed sampler cannot wrap it)",
        )


def device_count(devices: Any) -> int:
    """How many devices a ``devices`` value names: 2, [0, 1] and "0,1" are two; -1 (every
    one there is) counts as two, "auto" as one (the rest is Lightning's to refuse)."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, str):
        parts = [p.strip() for p in devices.split(",") if p.strip()]
        if len(parts) != 1:
            return len(parts)
        devices = int(parts[0]) if parts[0].lstrip("-").isdigit() else 1
    if isinstance(devices, bool) or not isinstance(devices, int):
        return 1
    return 2 if devices == -1 else devices


class Trainer(L.Trainer):
    # checked here, strictly: the config builder's looser check of Lightning's annotations
    # leaves these to it (cnnlab.config.build)
    checked_arguments = frozenset(RULES)

    def __init__(self, **kwargs: Any) -> None:
        kwargs = {**DEFAULTS, **kwargs}
        check(kwargs)
        super().__init__(**kwargs)
