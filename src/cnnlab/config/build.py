"""Build an object from a config node, and when it refuses, name the config key to blame.

Objects check their own arguments (``cnnlab.errors.checked``); third-party ones (torch
optimizers, Lightning's Trainer and callbacks) raise errors that name no key. Either way
the user reads one line, ``full.key=value is invalid: what is allowed``:

- an ``ArgumentError`` names its argument; the node's key (Hydra's ``full_key`` for a
  nested node) is put in front of it;
- any other refusal is pinned on the first argument whose removal (its default instead)
  lets the object build: the key that, changed alone, would have made it work.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pydantic import ConfigDict, TypeAdapter, ValidationError

from cnnlab.compat.hydra import locate
from cnnlab.errors import ArgumentError, BadInput, ConfigError

# what a constructor raises when its arguments are wrong (rather than when it has a bug)
try:
    from lightning.fabric.utilities.exceptions import MisconfigurationException
except ImportError:  # pragma: no cover
    MisconfigurationException = ValueError
REFUSALS = (
    ValueError,
    TypeError,
    KeyError,
    ImportError,
    FileNotFoundError,
    ArithmeticError,
    MisconfigurationException,
)
_FULL_KEY = re.compile(r"full_key: (\S+)")


def make_object(node: DictConfig, **kwargs: Any) -> Any:
    """Hydra's instantiate, with plain lists and dicts for the object's arguments, after
    checking the arguments of every third-party object in it against its annotations."""
    check_annotations(OmegaConf.to_container(node, resolve=True))
    return instantiate(node, _convert_="all", **kwargs)


def check_annotations(values: Any, where: str = "") -> None:
    """Type-check the arguments given to third-party classes (torch, Lightning) against the
    annotations of their constructors, as cnnlab's own ``@checked`` classes do themselves;
    a value of the wrong type there would otherwise surface mid-training, or never."""
    if isinstance(values, list):
        for i, v in enumerate(values):
            check_annotations(v, f"{where}[{i}]")
        return
    if not isinstance(values, dict):
        return
    for k, v in values.items():
        if not str(k).startswith("_"):
            check_annotations(v, f"{where}.{k}" if where else str(k))
    target = values.get("_target_")
    if not isinstance(target, str):
        return
    for name, hint in _hints(target).items():
        value = values.get(name)
        if name not in values or isinstance(value, dict) and "_target_" in value:
            continue
        try:
            TypeAdapter(hint, config=_LAX).validate_python(value)
        except ValidationError as err:
            first = err.errors()[0]
            raise ArgumentError(
                f"{where}.{name}" if where else name,
                value,
                first["msg"].replace("Input should be", "must be"),
            ) from None


_LAX = ConfigDict(arbitrary_types_allowed=True)


@functools.cache
def _hints(target: str) -> dict[str, Any]:
    """The annotated constructor arguments of a third-party class; for a cnnlab class, those
    of the third-party class it passes its other arguments on to (``**kwargs``)."""
    try:
        cls = locate(target)
        if not target.startswith("cnnlab."):
            return _annotations(cls.__init__ if isinstance(cls, type) else cls)
        # and not those it checks itself (cnnlab.training.trainer: strictly)
        own = {*inspect.signature(cls).parameters, *getattr(cls, "checked_arguments", ())}
        base = next(
            (
                b
                for b in cls.__mro__[1:]
                if not b.__module__.startswith("cnnlab") and "__init__" in b.__dict__
            ),
            None,
        )
        if base is None or base is object:
            return {}
        return {k: v for k, v in _annotations(base.__init__).items() if k not in own}
    except Exception:  # noqa: BLE001 - not a class we can read: nothing to check
        return {}


def _annotations(fn: Callable) -> dict[str, Any]:
    """A function's parameter annotations, each resolved alone (one that names a type only
    imported for type checkers is skipped, not the whole set)."""
    out = {}
    for name, hint in inspect.get_annotations(fn).items():
        if name == "return":
            continue
        if isinstance(hint, str):
            try:
                hint = eval(hint, vars(inspect.getmodule(fn)))  # noqa: S307 - a library's own annotation
            except Exception:  # noqa: BLE001
                continue
        out[name] = hint
    return out


def build(
    cfg: DictConfig,
    key: str,
    make: Callable[[DictConfig], Any] | None = None,
    suspects: list[str] = (),
    **kwargs: Any,
) -> Any:
    """``make(cfg.<key>)`` (default: instantiate with ``kwargs``), key-named errors on refusal.

    ``suspects`` are the keys the user set (Hydra's overrides): when no single argument's
    removal lets the object build (a required one), the one the user set under it is blamed.
    """
    make = make or (lambda node: make_object(node, **kwargs))
    node = OmegaConf.select(cfg, key)
    try:
        return make(node)
    except ConfigError:
        raise
    except BadInput as err:
        raise err from None
    except (InstantiationException, *REFUSALS) as err:
        raise blame(cfg, key, make, err, suspects) from None


def blame(
    cfg: DictConfig,
    key: str,
    make: Callable[[DictConfig], Any],
    err: Exception,
    suspects: list[str] = (),
) -> Exception:
    """The ConfigError (or BadInput) that tells the user which key made ``make`` fail."""
    node_key, cause = key, err
    while isinstance(cause, InstantiationException):
        found = _FULL_KEY.findall(str(cause))
        node_key = found[-1] if found else node_key
        if cause.__cause__ is None:
            break
        cause = cause.__cause__
    # Hydra >= 1.4 raises a nested object's own error, its key in a note, not wrapped
    noted = _FULL_KEY.findall("\n".join(getattr(cause, "__notes__", ())))
    node_key = noted[-1] if noted else node_key
    if isinstance(cause, ArgumentError):
        return ConfigError(f"{node_key}.{cause.name}", cause.value, cause.allowed)
    if isinstance(cause, (BadInput, ConfigError)):
        return cause
    message = _one_line(cause)
    if isinstance(cause, (InstantiationException, ImportError)):
        target = OmegaConf.select(cfg, f"{node_key}._target_")
        return ConfigError(f"{node_key}._target_", target, message)
    node = OmegaConf.select(cfg, node_key)
    if not OmegaConf.is_dict(node):
        return ConfigError(node_key, ConfigError.NODE, message)
    values = OmegaConf.to_container(node, resolve=True)  # the copies below have no root
    culprit = _culprit(values, make if node_key == key else make_object)
    if culprit is None:
        mine = [s[len(node_key) + 1 :] for s in suspects if s.startswith(node_key + ".")]
        culprit = mine[0] if len(mine) == 1 and mine[0] in values else None
    if culprit is not None:
        return ConfigError(f"{node_key}.{culprit}", values[culprit], message)
    return ConfigError(node_key, ConfigError.NODE, message)


def _culprit(values: dict[str, Any], make: Callable[[DictConfig], Any]) -> str | None:
    """The first argument whose removal lets ``make`` succeed."""
    for k in [k for k in values if not str(k).startswith("_")]:
        trial = OmegaConf.create({o: v for o, v in values.items() if o != k})
        try:
            make(trial)
        except Exception:  # noqa: BLE001 - any failure: this key alone is not the cause
            continue
        return str(k)
    return None


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    line = text.splitlines()[0].strip()
    if isinstance(err, KeyError):
        line = f"missing key {line}"
    return line
