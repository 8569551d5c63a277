"""Every user-facing value checked before any data is read or any model is built."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from cnnlab.run.cpu_malloc import MAX_MB as MALLOC_MAX_MB
from cnnlab.data.datamodule import DATASETS
from cnnlab.run.loggers import WANDB_MODES, wandb_credentials_present
from cnnlab.nets.transfer import FREEZE_MODES

IMAGE_SIZE = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28)}


class ConfigError(ValueError):
    """A config value outside what is allowed; the message is one line for the user."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


def _get(cfg: DictConfig, key: str, default: Any = None) -> Any:
    return OmegaConf.select(cfg, key, default=default)


def _check(cfg: DictConfig, key: str, ok: Callable[[Any], bool], allowed: str,
           required: bool = False) -> None:
    value = _get(cfg, key, default=_MISSING)
    if value is _MISSING:
        if required:
            raise ConfigError(key, None, f"is required; {allowed}")
        return
    try:
        good = ok(value)
    except (TypeError, ValueError):
        good = False
    if not good:
        raise ConfigError(key, value, allowed)


_MISSING = object()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for the first bad value, naming key, value and what is allowed."""
    _check(cfg, "seed", lambda v: _is_int(v) and 0 <= v < 2**32, "an integer in [0, 2**32)",
           required=True)
    _check(cfg, "resume", lambda v: v in ("never", "auto"), "one of ['never', 'auto']")
    _check(cfg, "test_ckpt", lambda v: v in ("best", "last"), "one of ['best', 'last']")
    _check(cfg, "torch_threads", lambda v: v is None or (_is_int(v) and v >= 1),
           "null or an integer >= 1")
    _check(cfg, "cpu_malloc", lambda v: v is None or (OmegaConf.is_dict(v) and set(v) == {
        "mmap_threshold_mb", "trim_threshold_mb"}),
           "null or {mmap_threshold_mb, trim_threshold_mb}")
    for key in ("cpu_malloc.mmap_threshold_mb", "cpu_malloc.trim_threshold_mb"):
        _check(cfg, key, lambda v: _is_int(v) and 0 <= v <= MALLOC_MAX_MB,
               f"an integer number of MiB in [0, {MALLOC_MAX_MB}]")
    _check(cfg, "ckpt_path", lambda v: v is None or Path(v).is_file(),
           "null or the path of an existing checkpoint file")

    # data
    _check(cfg, "data.name", lambda v: v in DATASETS, f"one of {sorted(DATASETS)}", required=True)
    _check(cfg, "data.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _check(cfg, "data.eval_batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _check(cfg, "data.val_fraction", lambda v: _is_num(v) and 0 < v < 1,
           "a fraction strictly between 0 and 1")
    _check(cfg, "data.std", lambda v: _is_num(v) and v > 0, "a number > 0")
    _check(cfg, "data.num_classes", lambda v: _is_int(v) and v >= 2, "an integer >= 2")
    aug = "data.augmentation"
    _check(cfg, f"{aug}.degrees", lambda v: _is_num(v) and 0 <= v <= 180,
           "rotation degrees in [0, 180]")
    _check(cfg, f"{aug}.translate", lambda v: _is_num(v) and 0 <= v < 1,
           "a fraction of the image size in [0, 1)")
    _check(cfg, f"{aug}.hflip", lambda v: _is_num(v) and 0 <= v <= 1, "a probability in [0, 1]")
    _check(cfg, f"{aug}.scale", lambda v: len(v) == 2 and 0 < v[0] <= v[1],
           "[low, high] with 0 < low <= high")

    # model
    _check(cfg, "model.net._target_", lambda v: isinstance(v, str), "a class path", required=True)
    _check(cfg, "model.net.dropout", lambda v: _is_num(v) and 0 <= v < 1,
           "a probability in [0, 1) (0 turns dropout off)")
    _check(cfg, "model.net.batchnorm", lambda v: isinstance(v, bool), "true or false")
    _check(cfg, "model.freeze", lambda v: v in FREEZE_MODES, f"one of {list(FREEZE_MODES)}")
    _check(cfg, "model.init_from", lambda v: v is None or Path(v).is_file(),
           "null or the path of an existing cnnlab checkpoint")
    _check(cfg, "model.net.weights", _weights_ok,
           "null, a torchvision weights name (e.g. IMAGENET1K_V1) or an existing file")
    _check(cfg, "model.optimizer.lr", lambda v: _is_num(v) and v > 0, "a learning rate > 0",
           required=True)
    _check(cfg, "model.optimizer.weight_decay", lambda v: _is_num(v) and v >= 0, "a number >= 0")
    _check(cfg, "model.scheduler.patience", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    _check(cfg, "model.scheduler.factor", lambda v: _is_num(v) and 0 < v < 1,
           "a factor strictly between 0 and 1")
    _check(cfg, "model.grad_norm_every", lambda v: _is_int(v) and v >= 0, "an integer >= 0")
    _check_input_size(cfg)

    # trainer, callbacks, logger
    _check(cfg, "trainer.max_epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1")
    _check(cfg, "trainer.accelerator", _accelerator_ok,
           "one of ['auto', 'cpu', 'gpu', 'cuda', 'mps'], and a GPU must be present for gpu/cuda")
    _check(cfg, "callbacks.early_stopping.patience", lambda v: _is_int(v) and v >= 0,
           "an integer >= 0")
    _check(cfg, "logger.wandb.mode", lambda v: v in WANDB_MODES, f"one of {list(WANDB_MODES)}")
    _check(cfg, "logger.wandb.mode", lambda v: v != "online" or wandb_credentials_present(),
           "online needs W&B credentials and none were found: set WANDB_API_KEY or run "
           "`wandb login` once, or use offline (the default) and `wandb sync` later")


def _weights_ok(v: Any) -> bool:
    if v is None:
        return True
    import torchvision
    return v in [w.name for w in torchvision.models.ResNet18_Weights] or Path(str(v)).is_file()


def _accelerator_ok(v: Any) -> bool:
    if v in ("gpu", "cuda"):
        return torch.cuda.is_available()
    return v in ("auto", "cpu", "mps")


def _check_input_size(cfg: DictConfig) -> None:
    declared = _get(cfg, "model.net.input_size")
    image = IMAGE_SIZE.get(_get(cfg, "data.name"))
    if declared is None or image is None or not isinstance(declared, (list, tuple)) and \
            not OmegaConf.is_list(declared):
        return
    declared = tuple(declared)
    if declared != image:
        raise ConfigError("model.net.input_size", list(declared),
                          f"the net's layers are sized for this input, but data.name="
                          f"{_get(cfg, 'data.name')} gives {list(image)} images")
