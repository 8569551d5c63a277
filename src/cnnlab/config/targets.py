"""What a config from a file the user did not write may build: cnnlab's kind of objects only.

A checkpoint carries the config that rebuilds its model, and a run dir carries the
overrides that reran it; both go through ``hydra.utils.instantiate``, which calls whatever
``_target_`` names. Hydra keeps a best-effort blocklist, no allowlist, so cnnlab checks
every ``_target_`` of such a config (nested and ``_partial_`` ones included) before
anything is built: the module must be one cnnlab's own configs use, and the object a class
of the kinds they build. The check imports nothing outside those modules.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from cnnlab.errors import ConfigError

MODULES = ("cnnlab.", "torch.optim.", "lightning.pytorch.", "torchmetrics.")
ALLOWED = ("cnnlab's networks, data modules, classifier, trainer, loggers and callbacks, "
           "torch optimizers and LR schedulers, Lightning's Trainer, callbacks and loggers, "
           "torchmetrics metrics")
# overrides of these keys choose where a run writes or how Hydra itself runs: a file's
# overrides may not set them (the rerun picks its own directory)
WRITE_KEYS = ("hydra", "paths", "search")  # search: which study and storage a job reports to
WRITE_LEAVES = ("dirpath", "save_dir", "default_root_dir", "output_dir", "log_dir",
                "submitit_folder", "save_to")


def _kinds() -> tuple[type, ...]:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import Callback
    from lightning.pytorch.loggers import Logger
    from torchmetrics import Metric

    from cnnlab.data.augment import BatchAugment

    return (torch.nn.Module, L.LightningDataModule, L.Trainer, Callback, Logger,
            torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler,
            torch.optim.lr_scheduler.ReduceLROnPlateau, Metric, BatchAugment)


def targets(node: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every (config key, _target_ value) in a config tree."""
    found = []
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=False)  # interpolations stay text
    if isinstance(node, dict):
        for k, v in node.items():
            sub = f"{key}.{k}" if key else str(k)
            if k == "_target_":
                found.append((sub, v))
            else:
                found += targets(v, sub)
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            found += targets(v, f"{key}[{i}]")
    return found


ENTRY_POINTS = "cnnlab.targets"  # group in which a user's installed package names its module


def extra_prefixes() -> tuple[str, ...]:
    """Module prefixes the user's own installed packages declare, e.g. in their pyproject
    ``[project.entry-points."cnnlab.targets"] mynets = "mynets"`` admits ``mynets.*`` (the
    same kinds of objects only). Declared by what is installed, never by the file checked."""
    from importlib.metadata import entry_points

    return tuple(f"{ep.value.strip().rstrip('.')}." for ep in entry_points(group=ENTRY_POINTS)
                 if ep.value.strip().strip(".") and ":" not in ep.value)


def allowed(target: Any) -> bool:
    """A target string within cnnlab's modules (or a module the user's installed package
    declares) that resolves (as Hydra resolves it) to a class of the allowed kinds; nothing
    outside those modules is imported to find out."""
    if not isinstance(target, str) or "__" in target \
            or not target.startswith(MODULES + extra_prefixes()):
        return False
    from cnnlab.compat.hydra import locate

    try:
        obj = locate(target)
    except Exception:  # noqa: BLE001 - not importable, or its import failed: not allowed
        return False
    return isinstance(obj, type) and issubclass(obj, _kinds())


def check(cfg: Any, source: str) -> None:
    """Refuse (ConfigError, before anything is built) a ``_target_`` outside the allowlist."""
    for key, target in targets(cfg):
        if not allowed(target):
            raise ConfigError(key, target, f"{source} may only build {ALLOWED} (or the "
                              f"modules an installed package declares in the entry point "
                              f"group {ENTRY_POINTS}); if you wrote it yourself and trust "
                              "it, pass --trust")


def check_overrides(overrides: list[str], source: str) -> None:
    """Refuse overrides from a file that choose where the run writes or how Hydra runs."""
    from cnnlab.config.overrides import key_of, value_of

    for o in overrides:
        key = key_of(o)
        if "@" in key or key.split(".")[0].split("/")[0] in WRITE_KEYS \
                or key.split(".")[-1] in WRITE_LEAVES:
            raise ConfigError(key, value_of(o), f"{source} may not choose where a run writes "
                              "or how Hydra runs; if you wrote it yourself, pass --trust")
