"""What no single object can check: how two of them fit together."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.training.classifier import FILLED_FROM_TRAINER


def check_input_size(cfg: DictConfig, net: nn.Module, datamodule) -> None:
    """A net sized for another input (seed 001's 39×31 example) cannot train on 28×28 digits."""
    declared = getattr(net, "input_size", None)
    image = getattr(datamodule, "image_size", None)
    if declared is None or image is None or tuple(declared) == tuple(image):
        return
    raise ConfigError(
        "model.net.input_size",
        list(declared),
        f"the net's layers are sized for this input, but data.name="
        f"{datamodule.name} gives {list(image)} images",
    )


def check_monitors(callbacks: list, logged: tuple[str, ...]) -> None:
    """A callback monitoring a metric the module never logs would fail at the first epoch."""
    for key, callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        if monitor is not None and monitor not in logged:
            raise ConfigError(
                f"{key}.monitor", monitor, f"one of the logged metrics {list(logged)}"
            )


def check_logger_needs(cfg: DictConfig) -> None:
    """Lightning's learning-rate monitor fails at the first epoch when there is no logger."""
    if (
        cfg.get("callbacks")
        and cfg.callbacks.get("lr_monitor")
        and not any((cfg.get("logger") or {}).values())
    ):
        raise ConfigError(
            "callbacks.lr_monitor",
            "LearningRateMonitor",
            "needs a logger; with logger=none set callbacks.lr_monitor=null",
        )


def no_validation(cfg: DictConfig) -> str | None:
    """What turns validation off, as the user wrote it (``data.validation=false`` or
    ``trainer.limit_val_batches=0``), or None when each epoch is validated."""
    if (cfg.get("data") or {}).get("validation", True) is False:
        return "data.validation=false"
    limit = (cfg.get("trainer") or {}).get("limit_val_batches")
    if isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit == 0:
        return f"trainer.limit_val_batches={limit}"
    return None


def check_validation_needs(cfg: DictConfig) -> None:
    """With no validation there is no val/ metric: what monitors one would fail at the end
    of the first epoch, after the training it cost."""
    off = no_validation(cfg)
    if off is None:
        return
    for name, node in (cfg.get("callbacks") or {}).items():
        monitor = node.get("monitor") if node else None
        if isinstance(monitor, str) and monitor.startswith("val/"):
            raise ConfigError(
                f"callbacks.{name}",
                node.get("_target_", "").rsplit(".", 1)[-1],
                f"monitors {monitor}, which {off} never computes; set callbacks.{name}=null",
            )
    scheduler = (cfg.get("model") or {}).get("scheduler")
    monitor = cfg.model.get("scheduler_monitor", "")
    if (
        scheduler
        and str(scheduler.get("_target_", "")).endswith("ReduceLROnPlateau")
        and str(monitor).startswith("val/")
    ):
        raise ConfigError(
            "model.scheduler",
            "ReduceLROnPlateau",
            f"steps on {monitor}, which {off} never computes; "
            "choose a schedule that needs no validation (model/scheduler="
            "onecycle, cosine or none)",
        )
    if cfg.get("test", True) and cfg.get("test_ckpt") == "best":
        raise ConfigError(
            "test_ckpt",
            "best",
            f"'last' with {off}: no epoch "
            "is best without validation, so the final weights are what is tested",
        )


def check_finite(cfg: DictConfig) -> None:
    """NaN or infinity in any numeric key is a bad value (``data.mean=nan`` would surface as
    a NaN loss, blamed on the learning rate); checked before anything is built."""

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(key, node, "a finite number (not nan or inf)")

    try:
        values = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - an unresolvable value: the object taking it names it
        return
    walk(values, "")


def check_scheduler_interval(cfg: DictConfig) -> None:
    """ReduceLROnPlateau steps on an epoch's validation metric: stepped per batch, it would
    read a metric not yet computed."""
    model = cfg.get("model") or {}
    target = str((model.get("scheduler") or {}).get("_target_", ""))
    if target.endswith("ReduceLROnPlateau") and model.get("scheduler_interval") == "step":
        raise ConfigError(
            "model.scheduler_interval",
            "step",
            "model.scheduler (ReduceLROnPlateau) steps once per epoch on a "
            "validation metric; set model.scheduler_interval=epoch",
        )


def check_step_budget(cfg: DictConfig) -> None:
    """A schedule whose length is filled from the trainer's step budget needs steps."""
    scheduler = (cfg.get("model") or {}).get("scheduler")
    fills = [
        k for k in FILLED_FROM_TRAINER if scheduler and k in scheduler and scheduler.get(k) is None
    ]
    if not fills or not cfg.get("train", True):
        return
    assert scheduler is not None  # it fills a key: there is one
    name = str(scheduler.get("_target_", "")).rsplit(".", 1)[-1]
    trainer = cfg.get("trainer") or {}
    for key in ("max_steps", "limit_train_batches"):
        value = trainer.get(key)
        if value is not None and not isinstance(value, bool) and value == 0:
            raise ConfigError(
                f"trainer.{key}",
                value,
                f"leaves model.scheduler ({name}) no step to schedule "
                f"(its {fills[0]} is the fit's length); give a budget >= 1",
            )


def check_batches(cfg: DictConfig, datamodule) -> None:
    """What needs the number of training batches per epoch (known once the data files are
    checked, before any data is read): an epoch of no batch would report a completed run
    that trained nothing, and Lightning would refuse an integer ``val_check_interval``
    longer than an epoch only once the data is loaded."""
    trainer = cfg.get("trainer") or {}
    batches = datamodule.train_batches() if hasattr(datamodule, "train_batches") else None
    if batches is None:
        return
    trains = cfg.get("train", True)
    if batches == 0 and trains:
        raise ConfigError(
            "data.batch_size",
            (cfg.get("data") or {}).get("batch_size"),
            f"at most the {datamodule.train_images()} training images with "
            "data.drop_last=true: an epoch would train on no batch",
        )
    limit = trainer.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif isinstance(limit, float):
        batches = int(batches * limit)
    if batches == 0 and trains:
        raise ConfigError(
            "trainer.limit_train_batches",
            limit,
            "a limit that leaves at least one training batch an epoch (train=false tests "
            "a checkpoint without training)",
        )
    every = trainer.get("val_check_interval")
    if (
        not isinstance(every, int)
        or isinstance(every, bool)
        or trainer.get("check_val_every_n_epoch", 1) is None
        or "ddp" in str(trainer.get("strategy", ""))
    ):  # each rank sees a share
        return
    if every > batches:
        raise ConfigError(
            "trainer.val_check_interval",
            every,
            f"at most the {batches} training batches of an epoch (or set "
            "trainer.check_val_every_n_epoch=null to count across epochs)",
        )


def check_classes(cfg: DictConfig, model: nn.Module, datamodule) -> None:
    """One logit per class of the data, and metrics over as many: a net or module sized for
    another number of classes would fail at the first batch (or, with more logits than
    classes, train and be scored against classes the data does not have). The net's output
    is measured by one forward pass of a blank image in eval mode (no state changes)."""
    classes = getattr(datamodule, "num_classes", None)
    image = getattr(datamodule, "image_size", None)
    if classes is None or image is None:
        return
    declared = getattr(model, "num_classes", classes)
    if declared != classes:
        raise ConfigError(
            "model.num_classes",
            declared,
            f"data.num_classes ({classes}): the module's metrics count the data's classes",
        )
    net = getattr(model, "net", None)
    if net is None:
        return
    modes = [(m, m.training) for m in net.modules()]  # each module's own, restored after
    net.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):  # it draws nothing; be sure
            out = net(torch.zeros(1, *image))
    except (RuntimeError, ValueError) as err:  # a net that cannot take the data's images
        raise ConfigError(
            "model.net",
            ConfigError.NODE,
            f"a net for data.name={getattr(datamodule, 'name', '?')}'s {list(image)} images "
            f"(a blank one fails: {str(err).splitlines()[0]})",
        ) from None
    finally:
        for module, training in modes:
            module.training = training
    logits = out.shape[-1] if out.dim() == 2 else None
    if logits != classes:
        given = cfg.model.get("net") or {}
        key, value = (
            ("model.net.num_classes", given["num_classes"])
            if "num_classes" in given
            else ("model.net", ConfigError.NODE)
        )
        raise ConfigError(
            key,
            value,
            f"data.num_classes ({classes}): the net must give one logit per class (it gives "
            f"{list(out.shape[1:])} per image)",
        )


def check_checkpoint_names(callbacks: list) -> None:
    """A checkpoint ``filename`` that cannot be formatted would fail at the first save,
    after an epoch of training: format it once now. It names a file in the callback's
    folder, never one outside it."""
    for key, callback in callbacks:
        if isinstance(callback, ModelCheckpoint):
            try:
                callback.format_checkpoint_name({})
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
                raise ConfigError(
                    f"{key}.filename",
                    callback.filename,
                    f"a format string of the logged metrics, epoch and step "
                    f"({str(err).splitlines()[0] or type(err).__name__})",
                ) from None
            name = Path(str(callback.filename))
            if name.is_absolute() or ".." in name.parts:
                raise ConfigError(
                    f"{key}.filename",
                    callback.filename,
                    f"a name inside {key}.dirpath (a checkpoint is written there; an absolute "
                    "path or a '..' part would put it elsewhere)",
                )


OUTPUT_KEYS = ("save_dir", "dirpath", "save_to", "default_root_dir")


def check_output_paths(cfg: DictConfig) -> None:
    """A folder a logger, callback or the trainer writes into cannot be under a file: it
    would fail when first written, mid-run."""
    nodes = [(f"logger.{k}", v) for k, v in (cfg.get("logger") or {}).items()]
    nodes += [(f"callbacks.{k}", v) for k, v in (cfg.get("callbacks") or {}).items()]
    nodes += [("trainer", cfg.get("trainer"))]
    for where, node in nodes:
        if not node:
            continue
        for name in OUTPUT_KEYS:
            value = node.get(name)
            if not isinstance(value, str) or not value:
                continue
            path = Path(value) if name != "save_to" else Path(value).parent
            blocker = next((p for p in (path, *path.parents) if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise ConfigError(
                    f"{where}.{name}", value, f"a folder to write into, but {blocker} is a file"
                )


def check_checkpoint_fits(key: str, path: str, checkpoint: dict, model: nn.Module) -> None:
    """A checkpoint of another net would fail inside fit, after the run dir was opened:
    compare its weights' names and shapes with the model's first."""
    saved = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(saved, dict):
        raise ConfigError(
            key, path, "a checkpoint written by cnnlab-train (it holds no state_dict)"
        )
    mine = model.state_dict()
    missing = [k for k in mine if k not in saved]
    extra = [k for k in saved if k not in mine]
    shapes = [
        k
        for k in mine
        if k in saved
        and hasattr(saved[k], "shape")
        and tuple(saved[k].shape) != tuple(mine[k].shape)
    ]
    if not (missing or extra or shapes):
        return
    net = type(getattr(model, "net", model)).__name__
    what = (
        f"{shapes[0]} has shape {list(saved[shapes[0]].shape)}, the model's "
        f"{list(mine[shapes[0]].shape)}"
        if shapes
        else f"it lacks {missing[0]}"
        if missing
        else f"it has {extra[0]}, which the model lacks"
    )
    raise ConfigError(
        key, path, f"a checkpoint of this model ({net}); it holds another net's weights ({what})"
    )
