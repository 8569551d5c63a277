"""What cnnlab prints: the user's text (configs, overrides, file contents) as plain text,
never as Rich markup (a saved override holding ``[/some/path]`` must not break a print)."""

from __future__ import annotations

import logging
import re
import warnings

from rich.console import Console
from rich.text import Text

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def error(message: str, prefix: str = "cnnlab") -> None:
    """One line on stderr: ``cnnlab: <message>``, the prefix in bold red."""
    err.print(Text.assemble((f"{prefix}:", "bold red"), " ", str(message)))


def note(message: str, prefix: str, style: str = "yellow", stderr: bool = False) -> None:
    (err if stderr else out).print(Text.assemble((f"{prefix}", style), " ", str(message)))


# third-party messages a user cannot act on (deprecations inside Lightning, its adverts and
# its hint that srun exists when the run is not a SLURM job)
NOISE = re.compile(
    r"isinstance\(treespec, LeafSpec\)|`srun` command is available|litlogger"
    r"|`weights_only` was not set"
    # a resumed run's own checkpoints/ (a folder of other files is refused before a run)
    r"|Checkpoint directory .* exists and is not empty"
)


def quiet() -> None:
    """NOISE off the console, kept in the log files (train.log) at debug level. Idempotent."""
    noise = logging.getLogger("cnnlab.noise")
    noise.setLevel(logging.DEBUG)
    noise.propagate = False  # not to the console: only the files the root logger writes
    noise.handlers = [_ToRootFiles()]
    if getattr(warnings.showwarning, "cnnlab_quiet", False):
        return
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if NOISE.search(str(message)):
            noise.debug("%s: %s", category.__name__, message)
        else:
            shown(message, category, filename, lineno, file, line)

    show.cnnlab_quiet = True  # type: ignore[attr-defined]
    warnings.showwarning = show
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(getattr(f, "cnnlab_quiet", False) for f in rank_zero.filters):
        rank_zero.addFilter(_to_noise)


class _ToRootFiles(logging.Handler):
    """Hands a record to the file handlers the root logger has when the record comes (the
    current job's train.log). Copies of them taken at ``quiet()`` outlived their job: once
    Hydra closed one and its staging dir was gone, a later record raised FileNotFoundError."""

    def emit(self, record: logging.LogRecord) -> None:
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.FileHandler) and record.levelno >= handler.level:
                try:  # noise is never worth a failed run (a log whose dir went, a full disk)
                    handler.handle(record)
                except Exception:
                    self.handleError(record)


def _to_noise(record: logging.LogRecord) -> bool:
    if NOISE.search(record.getMessage()):
        logging.getLogger("cnnlab.noise").debug("%s", record.getMessage())
        return False
    return True


_to_noise.cnnlab_quiet = True  # type: ignore[attr-defined]


class Held(logging.Filter):
    """``with Held(name) as held:`` keeps back what logger ``name`` logs and the warnings
    raised in the block, until ``held.release()`` hands them on in order; never released
    (the run was refused), they are dropped. Lightning says which devices it uses as it
    builds a Trainer ("GPU available: …" logged, "GPU available but not used" warned), which
    comes before the last checks of a run: a refusal there is then its one line alone.
    (Lightning has no switch for this; logging's filters and warnings' recorder do it.)"""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.logger, self.records = logging.getLogger(name), []  # type: ignore[var-annotated]
        self._recorder = warnings.catch_warnings(record=True)
        self.warned: list[warnings.WarningMessage] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def __enter__(self) -> Held:
        self.logger.addFilter(self)
        recorded = self._recorder.__enter__()  # the list it appends to (empty: falsy)
        self.warned = recorded if recorded is not None else []
        warnings.simplefilter("always")  # each is re-raised once, under the usual filters
        return self

    def __exit__(self, *exc: object) -> None:
        self._recorder.__exit__(None, None, None)
        self.logger.removeFilter(self)

    def release(self) -> None:
        records, self.records = self.records, []
        for record in records:
            self.logger.handle(record)
        warned, self.warned = self.warned, []
        for w in warned:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
