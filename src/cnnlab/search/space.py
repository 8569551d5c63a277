"""The search space: Hydra's sweep syntax to Optuna distributions, and trial values back.

``hydra.sweeper.params`` (and sweep overrides on the command line) take Hydra's syntax:

=================================  =============================================
``interval(1e-4, 1e-2)``           FloatDistribution(1e-4, 1e-2)
``tag(log, interval(1e-4, 1e-2))`` FloatDistribution(1e-4, 1e-2, log=True)
``tag(int, interval(8, 64))``      IntDistribution(8, 64)
``range(16, 129, 16)``             IntDistribution(16, 128, step=16): stop excluded, as in Python
``range(0.1, 0.5, 0.1)``           FloatDistribution(0.1, 0.4, step=0.1)
``choice(32, 64)`` or ``32,64``    CategoricalDistribution((32, 64))
a plain value                      not searched: every trial gets it
=================================  =============================================

Anything else (an empty choice, low >= high, an unknown tag, a glob) is a
:class:`~cnnlab.errors.ConfigError`: one line naming the key, before any trial runs.
"""

from __future__ import annotations

import decimal
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.launch.summary import one_line

# Optuna and Hydra's override parser are imported where used: Hydra imports the sweeper
# plugin on every run (search/__init__.py)

TAGS = {"log": "a log-scaled interval or range", "int": "an integer interval"}
PLAIN = (str, int, float, bool, type(None))


@dataclass
class Space:
    """What every trial samples, and the overrides every job gets as they are."""

    distributions: dict[str, Any] = field(default_factory=dict)  # override key -> distribution
    fixed: list[str] = field(default_factory=list)
    # override key -> (the config key to name in an error, the text the user wrote)
    sources: dict[str, tuple[str, str]] = field(default_factory=dict)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The overrides that give a job one trial's parameters."""
        return [f"{key}={format_value(params[key])}" for key in self.distributions if key in params]

    def probes(self, most: int = 32) -> list[list[str]]:
        """Override sets that touch every choice once (each composed before the search starts)."""
        base = {k: _first(d) for k, d in self.distributions.items()}
        sets = [dict(base)]
        for key, dist in self.distributions.items():
            for choice in getattr(dist, "choices", ())[1:]:
                sets.append({**base, key: choice})
        return [[*self.fixed, *self.overrides(s)] for s in sets[:most]]

    def bounds(self) -> list[tuple[str, list[str]]]:
        """(key, overrides) for each end of each numeric range and each number a choice()
        offers, the other keys at their first value: what the objects taking them can
        refuse before any trial runs. (A config group's choices are composed instead.)"""
        base = {k: _first(d) for k, d in self.distributions.items()}
        return [
            (key, [*self.fixed, *self.overrides({**base, key: value})])
            for key, dist in self.distributions.items()
            for value in _values_to_build(key, dist)
        ]


def _values_to_build(key: str, dist: Any) -> list[Any]:
    if not hasattr(dist, "choices"):
        return list(dict.fromkeys((dist.low, dist.high)))
    if "/" in key:
        return []
    return [c for c in dist.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]


def _first(dist: Any) -> Any:
    return dist.choices[0] if hasattr(dist, "choices") else dist.low


def parse(params: Mapping[str, Any] | None, arguments: Sequence[str] = ()) -> Space:
    """The search space of ``hydra.sweeper.params`` plus the command line (which wins)."""
    parser = _parser()
    entries = [(f"hydra.sweeper.params.{k}", str(v), f"{k}={v}") for k, v in (params or {}).items()]
    entries += [(a.split("=", 1)[0], a.split("=", 1)[-1], a) for a in arguments]
    space = Space()
    fixed: dict[str, str] = {}
    for where, text, line in entries:
        try:
            override = parser.parse_override(line)
        except Exception as err:  # Hydra's parser: empty choice, bad syntax, unknown function
            raise ConfigError(where, text, _parse_error(err)) from None
        key = override.get_key_element()
        space.distributions.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space.distributions[key] = distribution(where, text, override)
            space.sources[key] = (where, text)
        else:
            fixed[key] = f"{key}={override.get_value_element_as_str()}"
    space.fixed = list(fixed.values())
    return space


def distribution(where: str, text: str, override: Any) -> Any:
    """One sweep override as an Optuna distribution, or a ConfigError naming ``where``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    def bad(allowed: str) -> ConfigError:
        return ConfigError(where, text, allowed)

    sweep = override.value()
    tags = set(getattr(sweep, "tags", ()) or ())
    unknown = sorted(tags - set(TAGS))
    if unknown:
        raise bad(
            f"unknown tag {unknown[0]!r}; allowed tags: "
            + ", ".join(f"{t} ({what})" for t, what in TAGS.items())
        )
    try:
        if override.is_choice_sweep():
            if not hasattr(sweep, "list"):
                raise bad("glob() is not a search distribution; list the choices with choice(...)")
            if tags:
                raise bad("tags apply to interval() and range(), not to a choice")
            choices = [getattr(c, "text", c) for c in sweep.list]
            if not all(isinstance(c, PLAIN) for c in choices):
                raise bad("each choice must be a single value (no lists or dicts)")
            if len({(type(c), c) for c in choices}) != len(choices):
                raise bad("a choice is listed twice")
            return CategoricalDistribution(choices)
        if override.is_range_sweep():
            return _range(sweep, tags, bad)
        if override.is_interval_sweep():
            low, high = sweep.start, sweep.end
            if not low < high:
                raise bad("interval(low, high) needs low < high")
            if "log" in tags and low <= 0:
                raise bad("tag(log, interval(low, high)) needs low > 0")
            if "int" in tags:
                if not (float(low).is_integer() and float(high).is_integer()):
                    raise bad("tag(int, interval(low, high)) needs whole numbers")
                return IntDistribution(int(low), int(high), log="log" in tags)
            return FloatDistribution(float(low), float(high), log="log" in tags)
    except ConfigError:
        raise
    except ValueError as err:  # Optuna's own checks, e.g. log with a step
        raise bad(str(err).splitlines()[0]) from None
    raise bad("not a search distribution: use interval(), range(), choice() or a plain value")


def _range(sweep: Any, tags: set[str], bad: Any) -> Any:
    from optuna.distributions import FloatDistribution, IntDistribution

    start, stop, step = sweep.start, sweep.stop, sweep.step
    if not step:
        raise bad("range(start, stop, step) needs a step other than 0")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step)):
        values = range(start, stop, step)
        if not values:
            raise bad("range(start, stop[, step]) is empty (stop is excluded)")
        if "log" in tags and (min(values) <= 0 or abs(step) != 1):
            raise bad("tag(log, range(...)) needs start > 0 and step 1")
        return IntDistribution(min(values), max(values), step=abs(step), log="log" in tags)
    if "log" in tags:
        raise bad("tag(log, ...) does not go with a stepped float range; use interval()")
    d_start, d_stop, d_step = (decimal.Decimal(str(v)) for v in (start, stop, step))
    count = math.ceil((d_stop - d_start) / d_step)
    if count <= 0:
        raise bad("range(start, stop, step) is empty (stop is excluded)")
    last = d_start + (count - 1) * d_step
    low, high = sorted((float(d_start), float(last)))
    if low == high:
        raise bad("range(start, stop, step) holds a single value; give it as a plain value")
    return FloatDistribution(low, high, step=float(abs(d_step)))


def format_value(value: Any) -> str:
    """A value as the right-hand side of an override, read back by Hydra as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return text if _reads_back(text, text) else quote(text)


def quote(text: str) -> str:
    """``text`` in single quotes, escaped so that Hydra reads back exactly ``text``."""
    quoted = (
        "'"
        + re.sub(
            r"(\\*)'",
            lambda m: m.group(1) * 2 + "\\'",
            re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text),
        )
        + "'"
    )
    if not _reads_back(quoted, text):
        raise ConfigError("hydra.sweeper.params", text, "cannot be written as an override")
    return quoted


def _reads_back(rhs: str, value: Any) -> bool:
    try:
        parsed = _parser().parse_override(f"k={rhs}")
    except Exception:
        return False
    return (
        not parsed.is_sweep_override()
        and parsed.value() == value
        and type(parsed.value()) is type(value)
    )


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _parse_error(err: Exception) -> str:
    """Hydra's parser message in one line, without its 'while evaluating' preamble."""
    text = one_line(str(err)) or type(err).__name__
    text = re.sub(r"^\w+ while evaluating '[^']*': ", "", text)
    return text
