"""Train a frozen backbone's head on features computed once, instead of every epoch.

With ``model.freeze=backbone`` and no augmentation, the backbone maps each image to the
same features in every epoch: computing them once and training the head on the cache
gives the same optimisation at the cost of a single forward pass over the data.
"""

from __future__ import annotations

import contextlib

import torch
from lightning.pytorch.callbacks import Callback
from rich.console import Console
from torch import nn

from cnnlab.nets.transfer import head_name


@contextlib.contextmanager
def headless(net: nn.Module):
    """The net with its head swapped for Identity: its output is the head's input."""
    parent_name, _, child = head_name(net).rpartition(".")
    parent = net.get_submodule(parent_name) if parent_name else net
    head = getattr(parent, child)
    setattr(parent, child, nn.Identity())
    try:
        yield net
    finally:
        setattr(parent, child, head)


def cacheable(pl_module, datamodule) -> str | None:
    """Why features cannot be cached, or None when they can."""
    if getattr(pl_module, "freeze_mode", "none") != "backbone":
        return "the backbone is not frozen"
    if datamodule.augmentation.active:
        return "augmentation changes the backbone's input every epoch"
    head = head_name(pl_module.net)
    for name, module in pl_module.net.named_modules():
        if isinstance(module, nn.Dropout) and module.p > 0 and not name.startswith(head):
            return f"dropout ({name}) in the backbone makes its output random"
    return None


class FrozenFeatureCache(Callback):
    """At fit start, replace the image splits by backbone features and train only the head."""

    def __init__(self, enabled: bool = True, batch_size: int = 1000) -> None:
        self.enabled, self.batch_size = enabled, batch_size

    def on_fit_start(self, trainer, pl_module) -> None:
        dm = trainer.datamodule
        why_not = cacheable(pl_module, dm) if self.enabled else "disabled"
        if why_not is not None:
            return
        dm.setup("fit")
        net = pl_module.net
        was_training = net.training
        net.eval()
        features = dict(dm.splits)  # the test split stays images: it is tested after fit
        with torch.no_grad(), headless(net):
            for split in ("train", "val"):
                images, labels = dm.splits[split]
                chunks = [net(dm.prepare_batch(images[i:i + self.batch_size].to(pl_module.device),
                                               0, training=False))
                          for i in range(0, len(labels), self.batch_size)]
                features[split] = (torch.cat(chunks).to(images.device), labels)
        net.train(was_training)
        dm.use_features(features)
        pl_module.head_only = True
        Console().print(f"[cyan]feature cache:[/] backbone features computed once "
                        f"({features['train'][0].shape[1]} per image); training the head only")

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # the model itself stays whole: checkpoints, cnnlab-eval and reruns see the full net
        if stage == "fit" and pl_module.head_only:
            pl_module.head_only = False
            trainer.datamodule.use_images()
