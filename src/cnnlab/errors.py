"""What the user's input can get wrong, and how each object says so: one line, exit code 2.

Objects check their own arguments. ``@checked`` reads a constructor's type annotations
(with pydantic's range constraints) and raises :class:`ArgumentError` naming the first
bad argument; the run's builder then prefixes the config key the object came from, so
the user reads ``model.net.dropout=1.5 is invalid: ...``.
"""

from __future__ import annotations

import difflib
import errno
import functools
import inspect
import typing
from typing import Annotated, Any

from pydantic import ConfigDict, Field, ValidationError, validate_call

# exit codes: 0 ok, 1 the run failed, 2 bad input (config, data or weights files),
# 128 + the signal's number when stopped by one, as a shell reports it: 143 SIGTERM, 130
# Ctrl-C (cnnlab.run.signals.exit_code)
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 143

# a location that cannot be written (read-only, no permission, full): the user's to fix
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT)


def unwritable(err: OSError, flag: str = "hydra.run.dir, paths.log_dir or CNNLAB_LOG_DIR") -> str:
    """The one line for an output location that cannot be written, naming what to change."""
    where = err.filename or "the output location"
    return f"cannot write to {where}: {err.strerror or err} (give a writable location: {flag})"


# argument types for @checked constructors, each with the text the user reads
Count = Annotated[int, Field(ge=1, description="an integer >= 1")]
NonNegative = Annotated[int, Field(ge=0, description="an integer >= 0")]
Fraction = Annotated[float, Field(gt=0, lt=1, description="a fraction strictly between 0 and 1")]
Probability = Annotated[float, Field(ge=0, le=1, description="a probability in [0, 1]")]
DropoutP = Annotated[
    float, Field(ge=0, lt=1, description="a probability in [0, 1) (0 turns dropout off)")
]
Positive = Annotated[float, Field(gt=0, description="a number > 0")]
NonNegativeFloat = Annotated[float, Field(ge=0, description="a number >= 0")]
Classes = Annotated[int, Field(ge=2, description="an integer >= 2")]


class ArgumentError(ValueError):
    """An object's own argument outside what it allows; ``name`` is relative to the object."""

    def __init__(self, name: str, value: Any, allowed: str) -> None:
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"{name}={value!r} is invalid: {allowed}")


class ConfigError(ValueError):
    """A config value outside what is allowed, named by its full config key.

    Without a value it names a whole node (``model.scheduler is invalid: ...``): the
    object refused its arguments together and no single one could be blamed.
    """

    NODE = object()

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        shown = key if value is ConfigError.NODE else f"{key}={value!r}"
        super().__init__(f"{shown} is invalid: {allowed}")


class BadInput(ValueError):
    """A data, weights, checkpoint or run file that the run cannot use (one line for the user)."""


class WeightsUnavailable(BadInput):
    """Pretrained weights that cannot be had here (no network and not cached)."""


def require(name: str, value: Any, ok: typing.Callable[[Any], bool], allowed: str) -> None:
    """Raise ArgumentError unless ``ok(value)``; a TypeError or ValueError in ``ok`` counts as no."""
    try:
        good = bool(ok(value))
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ArgumentError(name, value, allowed)


def checked(init: typing.Callable) -> typing.Callable:
    """Validate a constructor's arguments against its annotations before it runs.

    Strict: a string is not a number and 1 is not ``true``. A ``Field(description=...)`` in
    an annotation is the text the user reads for that argument (what is allowed).
    """
    validated = validate_call(config=ConfigDict(strict=True, arbitrary_types_allowed=True))(init)
    takes = [p for p in inspect.signature(init).parameters if p != "self"]
    hints = typing.get_type_hints(init, include_extras=True)
    described = {
        name: meta.description
        for name, hint in hints.items()
        for meta in getattr(hint, "__metadata__", ())
        if getattr(meta, "description", None)
    }

    @functools.wraps(init)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return validated(*args, **kwargs)
        except ValidationError as err:
            first = err.errors()[0]
            loc = [str(p) for p in first["loc"]]
            name = loc[0] if loc else "?"
            where = name + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc[1:])
            allowed = described.get(name) or first["msg"].replace("Input should be", "must be")
            if first["type"] == "unexpected_keyword_argument":  # a key the object has not
                close = difflib.get_close_matches(name, takes, n=1)
                allowed = (
                    "no such argument"
                    + (f"; did you mean {close[0]}?" if close else "")
                    + f" ({init.__qualname__.split('.')[0]} takes {', '.join(takes)})"
                )
            raise ArgumentError(where, first.get("input"), allowed) from None

    return wrapper
