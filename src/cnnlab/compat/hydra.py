"""Hydra internals cnnlab needs, in one place.

- ``basic_sweeper``: Hydra's public ``Sweeper`` is an interface only; its cartesian-product
  sweep (parsing sweep overrides, batching, launching) lives in ``hydra._internal``.
  cnnlab's sweeper reuses it, changing only what happens after a failed job.
- ``job_value``: a failed ``JobReturn`` keeps its exception in ``_return_value``; the public
  ``return_value`` re-raises it (and prints to stderr), and a sweep's summary only reads it.

- ``hide_internal_options``: ``--help`` lists no option whose name starts with "_"
  (ablation/_study is the studies' shared base, not an experiment); Hydra's help has no
  hook for it, so its private group lister is wrapped.

- ``adapt_args_parser``: ``@hydra.main`` builds its argparse parser inside the call, with
  no hook; its module's ``get_args_parser`` is wrapped so that cnnlab can make a bad flag
  one line instead of argparse's usage block.

- ``locate``: resolves a ``_target_`` exactly as ``instantiate`` will. Its public form,
  ``hydra.utils.get_object``, logs an error for every name it cannot resolve, and a refused
  target must stay one line.

Tested with hydra-core 1.3.8.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

# Each Hydra internal is imported where used: one that a Hydra upgrade drops fails only
# its own use, and basic_sweeper must see the class after Hydra's plugin scan

__all__ = ["adapt_args_parser", "basic_sweeper", "hide_internal_options", "job_value", "locate"]


def basic_sweeper() -> type:
    """Hydra's BasicSweeper as it is when called: Hydra's plugin scan re-executes its core
    plugin modules, so a class imported before the scan is not the one Hydra's code uses."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    return BasicSweeper


def locate(path: str) -> Any:
    """The object a dotted ``_target_`` names (ImportError and others when there is none)."""
    from hydra._internal.utils import _locate

    return _locate(path)


def job_value(job_return: Any) -> Any:
    """What a job returned, or the exception it failed with, without raising it."""
    return job_return._return_value


def hide_internal_options() -> None:
    """Wrap Hydra's group lister so that ``--help`` leaves out _-prefixed options."""
    from hydra._internal.hydra import Hydra

    listed = Hydra.format_config_groups

    def format_config_groups(self: Any, predicate: Any, compact: bool = True) -> str:
        return re.sub(r"(?<=[:,] )_[\w-]+(, |$)", "", listed(self, predicate, compact), flags=re.M)

    Hydra.format_config_groups = format_config_groups  # type: ignore[method-assign]


def adapt_args_parser(adapt: Callable[[Any], None]) -> None:
    """Pass each argparse parser ``@hydra.main`` makes through ``adapt`` before it parses."""
    module: Any = importlib.import_module("hydra.main")  # hydra.main is also the decorator
    make = getattr(module.get_args_parser, "__wrapped__", module.get_args_parser)

    def get_args_parser() -> Any:
        parser = make()
        adapt(parser)
        return parser

    get_args_parser.__wrapped__ = make  # type: ignore[attr-defined]
    module.get_args_parser = get_args_parser
