"""What a config from a file the user did not write may build: cnnlab's kind of objects only.

A checkpoint carries the config that rebuilds its model, and a run dir carries the
overrides that reran it; both go through ``hydra.utils.instantiate``, which calls whatever
``_target_`` names. Hydra keeps a best-effort blocklist, no allowlist, so cnnlab checks
every ``_target_`` of such a config (nested and ``_partial_`` ones included) before
anything is built: the module must be one cnnlab's own configs use, and the object a class
of the kinds they build. The check imports nothing outside those modules.

A file's text is data all the way down. OmegaConf resolves ``${...}`` when a value is read,
and a resolver can build objects (``${oc.create:{_target_: ...}}``), read the environment
or decode text into new nodes, so a string from a file may hold no resolver call at all:
only references to the config's own keys (``${model.optimizer.lr}``). The targets are then
checked on the config *after* resolution, every node, so that a reference cannot bring
in a node the check did not see. Names and folders a file sets may not leave the run.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from cnnlab.compat.hydra import locate
from cnnlab.config.overrides import key_of, value_of
from cnnlab.errors import ConfigError
from cnnlab.files import inside

# torch, Lightning and torchmetrics are imported when a file's targets are checked, not
# when cnnlab-rerun or cnnlab-search-report start

MODULES = ("cnnlab.", "torch.optim.", "lightning.pytorch.", "torchmetrics.")
ALLOWED = (
    "cnnlab's networks, data modules, classifier, trainer, loggers and callbacks, "
    "torch optimizers and LR schedulers, Lightning's Trainer, callbacks and loggers, "
    "torchmetrics metrics"
)
# overrides of these keys choose where a run writes or how Hydra itself runs: a file's
# overrides may not set them (the rerun picks its own directory)
WRITE_KEYS = ("hydra", "paths", "search")  # search: which study and storage a job reports to
WRITE_LEAVES = (
    "dirpath",
    "save_dir",
    "default_root_dir",
    "output_dir",
    "log_dir",
    "submitit_folder",
    "save_to",
    "dir",
)
# leaves that name a file or folder *inside* a write location (a checkpoint's filename, a
# logger's name/version): a path separator or '..' there would leave it
NAME_LEAVES = ("filename", "name", "version", "prefix", "sub_dir")
# a reference to the config's own keys, the one kind of interpolation a file may hold
_NODE_REF = re.compile(r"\$\{\s*\.*[A-Za-z_][\w-]*(?:\.[\w-]+|\[\s*[\w-]+\s*\])*\s*\}")
_SHOWN = 120  # characters of a file's value shown in an error line


def _kinds() -> tuple[type, ...]:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
    from torchmetrics import Metric

    from cnnlab.data.augment import BatchAugment

    return (
        torch.nn.Module,
        L.LightningDataModule,
        L.Trainer,
        Callback,
        Logger,
        torch.optim.Optimizer,
        torch.optim.lr_scheduler.LRScheduler,
        torch.optim.lr_scheduler.ReduceLROnPlateau,
        Metric,
        BatchAugment,
    )


def leaves(node: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every (config key, value) leaf of a config tree; interpolations stay text."""
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        return [
            leaf for k, v in node.items() for leaf in leaves(v, f"{key}.{k}" if key else str(k))
        ]
    if isinstance(node, (list, tuple)):
        return [leaf for i, v in enumerate(node) for leaf in leaves(v, f"{key}[{i}]")]
    return [(key, node)]


def targets(node: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every (config key, _target_ value) in a config tree."""
    return [(k, v) for k, v in leaves(node, key) if k.rsplit(".", 1)[-1] == "_target_"]


def calls_resolver(text: Any) -> bool:
    """Whether a string would do more than refer to the config's own keys when resolved
    (fails closed: anything that still reads as ``${`` once plain references are gone)."""
    return isinstance(text, str) and "${" in _NODE_REF.sub("", text)


def shown(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}… ({len(text)} characters)"


def refuse_resolvers(pairs: list[tuple[str, Any]], source: str) -> None:
    """ConfigError for the first (key, text) pair from a file that calls a resolver."""
    for key, value in pairs:
        if calls_resolver(key) or calls_resolver(value):
            raise ConfigError(
                key,
                shown(value),
                f"{source} may refer only to its own keys "
                "(${a.b}); a resolver such as ${oc.create:...} or ${oc.env:...} "
                "is code, not data; if you wrote it yourself, pass --trust",
            )


def as_data(cfg: Any, source: str) -> Any:
    """A config read from a file, resolved as data: refused if any of its text calls a
    resolver; references to its own keys resolved. What comes back may be checked and built."""
    container = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg
    refuse_resolvers(leaves(container), source)
    try:
        return OmegaConf.to_container(OmegaConf.create(container), resolve=True)
    except Exception as err:  # noqa: BLE001 - a reference to a key that is not there
        raise ConfigError(
            "config", ConfigError.NODE, f"{source} does not resolve: {str(err).splitlines()[0]}"
        ) from None


def check_data(cfg: Any, source: str) -> dict[str, Any]:
    """A whole config read from a file (a checkpoint's): resolved as data, then every
    ``_target_`` of the resolved tree checked; that tree is what may be built."""
    resolved = as_data(cfg, source)
    check(resolved, source)
    return resolved


ENTRY_POINTS = "cnnlab.targets"  # group in which a user's installed package names its module


def extra_prefixes() -> tuple[str, ...]:
    """Module prefixes the user's own installed packages declare, e.g. in their pyproject
    ``[project.entry-points."cnnlab.targets"] mynets = "mynets"`` admits ``mynets.*`` (the
    same kinds of objects only). Declared by what is installed, never by the file checked."""
    return tuple(
        f"{ep.value.strip().rstrip('.')}."
        for ep in entry_points(group=ENTRY_POINTS)
        if ep.value.strip().strip(".") and ":" not in ep.value
    )


def allowed(target: Any) -> bool:
    """A target string within cnnlab's modules (or a module the user's installed package
    declares) that resolves (as Hydra resolves it) to a class of the allowed kinds; nothing
    outside those modules is imported to find out."""
    if (
        not isinstance(target, str)
        or "__" in target
        or not target.startswith(MODULES + extra_prefixes())
    ):
        return False
    try:
        obj = locate(target)
    except Exception:  # noqa: BLE001 - not importable, or its import failed: not allowed
        return False
    return isinstance(obj, type) and issubclass(obj, _kinds())


def check(cfg: Any, source: str) -> None:
    """Refuse (ConfigError, before anything is built) a ``_target_`` outside the allowlist."""
    for key, target in targets(cfg):
        if not allowed(target):
            raise ConfigError(
                key,
                shown(target),
                f"{source} may only build {ALLOWED} (or the "
                f"modules an installed package declares in the entry point "
                f"group {ENTRY_POINTS}); if you wrote it yourself and trust "
                "it, pass --trust",
            )


def check_overrides(overrides: list[str], source: str) -> None:
    """Refuse overrides from a file that choose where the run writes or how Hydra runs,
    call a resolver, or hold a path that climbs out ('..')."""
    refuse_resolvers([(key_of(o), value_of(o)) for o in overrides], source)
    for o in overrides:
        key, value = key_of(o), value_of(o)
        if (
            "@" in key
            or key.split(".")[0].split("/")[0] in WRITE_KEYS
            or key.split(".")[-1] in WRITE_LEAVES
            or _climbs(value)
        ):
            raise ConfigError(
                key,
                shown(value),
                f"{source} may not choose where a run "
                "writes or how Hydra runs; if you wrote it yourself, pass --trust",
            )


def check_writes(resolved: dict[str, Any], roots: list[Path], source: str) -> None:
    """On a resolved config: every write location inside one of ``roots`` (the run's own
    dir, cnnlab's log folder), every name inside its location (no separator, no '..')."""
    for key, value in leaves(resolved):
        leaf = key.rsplit(".", 1)[-1]
        if value is None or not isinstance(value, str) or key.startswith("hydra."):
            continue
        if leaf in WRITE_LEAVES and not any(inside(Path(value), r) for r in roots):
            raise ConfigError(
                key,
                shown(value),
                f"{source} may only write inside the run's "
                "own dir or cnnlab's log folder; if you wrote it yourself, "
                "pass --trust",
            )
        if leaf in NAME_LEAVES and ("/" in value or "\\" in value or _climbs(value)):
            raise ConfigError(
                key,
                shown(value),
                f"{source} may not name a file outside its "
                "folder (a path separator or '..'); if you wrote it yourself, "
                "pass --trust",
            )


def _climbs(value: str) -> bool:
    return ".." in re.split(r"[/\\,\[\]{}:'\"\s=]", str(value))
