"""The error path every console command shares: a bad flag, input file or output location is
one line, ``<command>: <flag>=<value> is invalid: <what is allowed>``, and exit code 2, before
any data is read; never argparse's usage block or a traceback.

    parser = flags.Parser(prog="cnnlab-show")
    parser.add_argument("--digits", type=flags.integer(1, 10), default=4)

    @flags.command("cnnlab-show")
    def main(argv=None) -> int: ...

``command`` turns the expected failures (BadInput, ConfigError, ArgumentError, an output
location that cannot be written) raised anywhere in the command into that line.
"""

from __future__ import annotations

import argparse
import functools
import math
from pathlib import Path
from typing import Any, Callable

from cnnlab.console import error
from cnnlab.errors import EXIT_BAD_INPUT, UNWRITABLE, ArgumentError, BadInput, ConfigError


class Parser(argparse.ArgumentParser):
    """argparse, whose refusals (unknown flag, wrong type, value out of range) are one line
    naming the flag, exit 2 (argparse prints its usage block and the message)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        error(message, self.prog)
        raise SystemExit(EXIT_BAD_INPUT)


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Another library's parser (Hydra's) refusing as ``Parser`` does: one line, exit 2."""
    parser.__class__ = type("OneLine", (Parser, type(parser)), {})


def _number(
    kind: type, low: float | None, high: float | None, low_open: bool, high_open: bool = False
) -> Callable:
    above = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    below = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    allowed = " ".join(
        p
        for p in (
            f"a finite {'integer' if kind is int else 'number'}",
            above,
            "and" if above and below else "",
            below,
        )
        if p
    )

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if (
            value is None
            or not math.isfinite(value)
            or (low is not None and (value <= low if low_open else value < low))
            or (high is not None and (value >= high if high_open else value > high))
        ):
            raise argparse.ArgumentTypeError(f"{text!r} is invalid: {allowed}")
        return value

    parse.__name__ = kind.__name__
    return parse


def number(
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
):
    """An argparse ``type``: a finite float in [low, high] (an end excluded when open)."""
    return _number(float, low, high, low_open, high_open)


def integer(low: int | None = None, high: int | None = None):
    """An argparse ``type``: an integer in [low, high]."""
    return _number(int, low, high, False)


def out_dir(flag: str, value: str | Path | None) -> Path | None:
    """A folder the command will write into: one that is, or can be made (nothing on its
    path is a file). Checked before any work, so a bad location costs nothing."""
    if value is None:
        return None
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ArgumentError(flag, str(value), "it names a file; give a folder")
    _no_file_above(flag, path, path)
    return path


def out_file(flag: str, value: str | Path | None, ours: Callable[[Path], bool]) -> Path | None:
    """A file the command will write: not a folder, nothing above it a file, and new or
    one ``ours`` says the command wrote (a run's results.json or a checkpoint given by
    mistake is never overwritten). Missing folders above it are made when it is written."""
    if value is None:
        return None
    path = Path(value)
    if path.is_dir():
        raise ArgumentError(flag, str(value), "it names a folder; give a file name")
    _no_file_above(flag, path, path.parent)
    if path.exists() and not ours(path):
        raise ArgumentError(
            flag,
            str(value),
            "it holds a file this command did not write, which it never overwrites; "
            "give a new file name",
        )
    return path


def in_file(flag: str, value: str | Path | None) -> Path | None:
    """A file the command reads: it must be one."""
    return _existing(flag, value, Path.is_file, "no such file", "not a file; give a file")


def in_dir(flag: str, value: str | Path | None) -> Path | None:
    """A folder the command reads from: it must be one."""
    return _existing(flag, value, Path.is_dir, "no such folder", "it names a file; give a folder")


def _existing(
    flag: str, value: str | Path | None, is_kind: Callable, missing: str, other: str
) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not is_kind(path):
        raise ArgumentError(flag, str(value), missing if not path.exists() else other)
    return path


def _no_file_above(flag: str, path: Path, start: Path) -> None:
    for parent in [start, *start.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ArgumentError(flag, str(path), f"{parent} is a file, not a folder")
            return


def command(prog: str) -> Callable:
    """A console command's ``main``: its expected failures as one line and exit 2."""

    def wrap(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            try:
                return main(argv)
            except ArgumentError as err:  # a flag: named with its dashes already
                return _refuse(prog, str(err))
            except (
                BadInput,
                ConfigError,
                FileNotFoundError,
                NotADirectoryError,
                IsADirectoryError,
            ) as err:
                return _refuse(prog, str(err))
            except OSError as err:
                if err.errno not in UNWRITABLE:
                    raise
                return _refuse(
                    prog, f"cannot write to {err.filename or 'its output'}: {err.strerror or err}"
                )

        return run

    return wrap


def _refuse(prog: str, message: str) -> int:
    text = message.strip()
    error(text.splitlines()[0] if text else "invalid input", prog)
    return EXIT_BAD_INPUT
