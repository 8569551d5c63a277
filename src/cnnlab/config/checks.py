"""What no single object can check: how two of them fit together."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from cnnlab.errors import ConfigError


def check_input_size(cfg: DictConfig, net: nn.Module, datamodule) -> None:
    """A net sized for another input (seed 001's 39×31 example) cannot train on 28×28 digits."""
    declared = getattr(net, "input_size", None)
    image = getattr(datamodule, "image_size", None)
    if declared is None or image is None or tuple(declared) == tuple(image):
        return
    raise ConfigError("model.net.input_size", list(declared),
                      f"the net's layers are sized for this input, but data.name="
                      f"{datamodule.name} gives {list(image)} images")


def check_monitors(callbacks: list, logged: tuple[str, ...]) -> None:
    """A callback monitoring a metric the module never logs would fail at the first epoch."""
    for key, callback in callbacks:
        monitor = getattr(callback, "monitor", None)
        if monitor is not None and monitor not in logged:
            raise ConfigError(f"{key}.monitor", monitor, f"one of the logged metrics {list(logged)}")


def check_logger_needs(cfg: DictConfig) -> None:
    """Lightning's learning-rate monitor fails at the first epoch when there is no logger."""
    if cfg.get("callbacks") and cfg.callbacks.get("lr_monitor") and not any(
            (cfg.get("logger") or {}).values()):
        raise ConfigError("callbacks.lr_monitor", "LearningRateMonitor",
                          "needs a logger; with logger=none set callbacks.lr_monitor=null")
