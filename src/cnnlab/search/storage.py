"""Where a study lives, and the study itself, created or resumed.

``hydra.sweeper.storage`` is one of

- ``null``: in memory, for a quick search in one process; gone when it ends.
- ``journal:PATH`` or a plain ``PATH``: Optuna's JournalStorage on a file (one line per
  change, appended under a lock). Works on a shared filesystem (NFS) for several machines.
- an SQLAlchemy URL: ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
  ``postgresql://user@host/db`` or ``mysql://...`` (with their driver installed).

Relative paths are taken from the directory the command runs in and made absolute, so
jobs on other machines (SLURM) open the same file. A storage that cannot be opened, and a
study that exists with the other direction, are :class:`~cnnlab.errors.ConfigError`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.config.targets import as_data, targets
from cnnlab.errors import ConfigError
from cnnlab.launch.summary import one_line

# Optuna, SQLAlchemy and Hydra are imported where used: Hydra imports the sweeper plugin on
# every run (search/__init__.py), and cnnlab-search-report starts without them

KEY = "hydra.sweeper.storage"
IN_MEMORY = (None, "", "inmemory", "in-memory", "memory")
# the study's pruner config (a dict with _target_), kept in the study for its jobs
PRUNER_ATTR = "cnnlab:pruner"
# in-memory studies of this process, by the owner token of the sweeper that holds them
_IN_PROCESS: dict[str, Any] = {}


@dataclass(frozen=True)
class Storage:
    """A parsed storage setting: ``kind`` is memory, journal or rdb; ``url`` is absolute."""

    kind: str
    url: str | None = None  # the journal file's path, or the SQLAlchemy URL

    @property
    def persistent(self) -> bool:
        return self.kind != "memory"

    def setting(self) -> str | None:
        """The value that opens this storage again, from anywhere (what jobs are given)."""
        return f"journal:{self.url}" if self.kind == "journal" else self.url

    def shown(self) -> str:
        """For messages and reports: the password of a database URL is hidden."""
        if self.kind != "rdb":
            return self.setting() or "in-memory"
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)


def parse_storage(value: Any, cwd: str | Path | None = None, key: str = KEY) -> Storage:
    """The storage a setting names (nothing is opened yet)."""
    if value in IN_MEMORY:
        return Storage("memory")
    if not isinstance(value, str):
        raise ConfigError(
            key,
            value,
            "a journal file path, journal:PATH, an SQLAlchemy URL "
            "(sqlite:///file.db, postgresql://...) or null",
        )
    base = Path(cwd or os.getcwd())
    if "://" not in value:
        path = value[len("journal:") :] if value.startswith("journal:") else value
        if not path:
            raise ConfigError(key, value, "journal: needs a file path")
        return Storage("journal", str((base / Path(path).expanduser()).resolve()))
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError as err:
        raise ConfigError(key, value, f"not a database URL: {err}") from None
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str((base / Path(url.database).expanduser()).resolve()))
    return Storage("rdb", url.render_as_string(hide_password=False))


def open_storage(storage: Storage, key: str = KEY, tries: int = 5, create: bool = True) -> Any:
    """The Optuna storage object; a ConfigError in one line when it cannot be opened.

    ``create=False`` (jobs, reports): a journal or SQLite file that is not there is an
    error, not a new empty storage.
    """
    import optuna

    if storage.kind == "memory":
        return optuna.storages.InMemoryStorage()
    local = storage.url if storage.kind == "journal" else _sqlite_file(storage.url)
    if not create and local and not Path(local).is_file():
        raise ConfigError(key, storage.shown(), "no such file")
    try:
        if storage.kind == "journal":
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            Path(storage.url).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(storage.url))
        return _open_rdb(storage.url, tries)
    except Exception as err:  # no driver, no server, no permission, an old schema...
        raise ConfigError(key, storage.shown(), f"cannot open it: {_one_line(err)}") from None


def _sqlite_file(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return parsed.database
    return None


def _open_rdb(url: str, tries: int) -> Any:
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import IntegrityError, OperationalError

    engine_kwargs: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "sqlite":
        if _sqlite_file(url):
            Path(_sqlite_file(url)).parent.mkdir(parents=True, exist_ok=True)
        # several processes share one file: wait for a writer's lock rather than fail at once
        engine_kwargs["connect_args"] = {"timeout": 60}
    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (OperationalError, IntegrityError) as err:
            # two processes creating the tables of a new database at the same moment: the
            # loser finds a table or alembic's version row already there; it opens it next time
            racing = any(
                s in str(err)
                for s in ("already exists", "locked", "UNIQUE constraint", "duplicate key")
            )
            if not racing or attempt == tries - 1:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def open_study(
    storage_obj: Any,
    storage: Storage,
    study_name: str,
    direction: str,
    sampler: Any = None,
    pruner: Any = None,
) -> Any:
    """Create the study, or load it to continue; its direction must be the one asked for."""
    import optuna

    try:
        study = optuna.create_study(
            storage=storage_obj,
            study_name=study_name,
            direction=direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except Exception as err:
        raise ConfigError(
            KEY, storage.shown(), f"cannot open study {study_name!r} there: {_one_line(err)}"
        ) from None
    existing = [d.name.lower() for d in study.directions]
    if existing != [direction]:
        raise ConfigError(
            "hydra.sweeper.direction",
            direction,
            f"study {study_name!r} in {storage.shown()} was created to "
            f"{' and '.join(existing)}; give that direction or another study_name",
        )
    return study


def load_study(setting: str | None, study_name: str, pruner: Any = None) -> Any:
    """A study that a sweeper made, opened from another process (a job, a report)."""
    import optuna

    storage = parse_storage(setting)
    return optuna.load_study(
        study_name=study_name, storage=open_storage(storage, create=False), pruner=pruner
    )


def make_pruner(spec: dict[str, Any] | None) -> Any:
    """The pruner a config names (``_target_`` and its arguments); none prunes nothing.

    Optuna's own default would be a MedianPruner: a search without ``pruner`` must not prune.
    """
    import optuna
    from hydra.utils import instantiate

    # the spec comes back from the study's storage, which other processes (or people) write:
    # it is resolved as data (no resolver runs), and nothing but Optuna's pruners is built
    spec = as_data(spec, "the pruner stored with the study") if spec else spec
    for key, target in targets(spec or {}):
        if not (
            isinstance(target, str) and target.startswith("optuna.pruners.") and "__" not in target
        ):
            raise ConfigError(
                f"hydra.sweeper.pruner.{key}", target, "an Optuna pruner (optuna.pruners.*)"
            )
    pruner = instantiate(spec) if spec else optuna.pruners.NopPruner()
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise ConfigError("hydra.sweeper.pruner", spec, "an Optuna pruner (optuna.pruners.*)")
    return pruner


def register_in_process(owner: str, study: Any) -> None:
    """Let jobs run in this process (basic launcher) reach an in-memory study."""
    _IN_PROCESS[owner] = study


def unregister_in_process(owner: str) -> None:
    _IN_PROCESS.pop(owner, None)


def in_process(owner: str) -> Any:
    return _IN_PROCESS.get(owner)


def _one_line(err: BaseException) -> str:
    return one_line(str(err)) or type(err).__name__
