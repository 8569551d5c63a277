"""The LightningModule: loss, metrics and optimizers around any ``nn.Module`` classifier."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from cnnlab.nets.transfer import freeze as freeze_net
from cnnlab.nets.transfer import frozen_norm_layers_to_eval, head_name, init_from_checkpoint


class Classifier(L.LightningModule):
    """Cross-entropy classifier; optimizer and scheduler arrive as partials from Hydra."""

    def __init__(self, net: nn.Module, optimizer: partial, scheduler: partial | None = None,
                 scheduler_monitor: str = "val/loss", num_classes: int = 10,
                 init_from: str | None = None, freeze: str = "none",
                 grad_norm_every: int = 50) -> None:
        super().__init__()
        self.net = net
        if init_from:
            init_from_checkpoint(net, init_from)
        freeze_net(net, freeze)
        self.freeze_mode = freeze
        self.head_only = False
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_monitor = scheduler_monitor
        self.grad_norm_every = grad_norm_every
        self.example_input_array = torch.zeros(2, *getattr(net, "input_size", (1, 28, 28)))
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_class_acc = MulticlassAccuracy(num_classes, average=None)
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.best_val_acc: float | None = None  # a plain float so checkpoints keep it
        self._train_steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.head_only:  # batches are cached backbone features (cnnlab.training.feature_cache)
            return self.net.get_submodule(head_name(self.net))(x)
        return self.net(x)

    def _step(self, batch, loss_metric, acc_metric):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        loss_metric.update(loss.detach(), weight=y.numel())
        acc_metric.update(logits.detach(), y)
        return loss, logits

    # The training step is the hot loop: a torchmetrics update there costs ~0.15 ms (1% of
    # a MyCNN step on a CPU, experiments/benchmark), so each step only keeps its loss and
    # predictions, on the device, and the metrics take them in once, when read.
    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self._train_steps.append((loss.detach(), logits.detach().argmax(dim=1), y))
        return loss

    def train_metrics(self) -> dict[str, torch.Tensor]:
        """The epoch's training loss and accuracy so far (empty before any step)."""
        if self._train_steps:
            losses, preds, targets = zip(*self._train_steps)
            self._train_steps.clear()
            weights = torch.tensor([len(t) for t in targets], device=losses[0].device,
                                   dtype=losses[0].dtype)
            self.train_loss.update(torch.stack(losses), weight=weights)
            self.train_acc.update(torch.cat(preds), torch.cat(targets))
        if not self.train_acc.update_called:
            return {}
        return {"train/loss": self.train_loss.compute(), "train/acc": self.train_acc.compute()}

    # Metrics are logged once per epoch: each ``self.log`` of a Metric moves it to the
    # device and re-checks its metadata, ~0.3 ms per call (experiments/benchmark).
    def _log_epoch(self, stage: str, loss_metric: MeanMetric, acc_metric, prog_bar: bool) -> None:
        if acc_metric.update_called:
            self.log(f"{stage}/loss", loss_metric.compute(), prog_bar=prog_bar)
            self.log(f"{stage}/acc", acc_metric.compute(), prog_bar=prog_bar)
        loss_metric.reset()
        acc_metric.reset()

    def on_train_epoch_start(self) -> None:
        self._train_steps.clear()
        if self.freeze_mode != "none":
            frozen_norm_layers_to_eval(self.net)

    def on_train_epoch_end(self) -> None:
        self.train_metrics()
        self._log_epoch("train", self.train_loss, self.train_acc, prog_bar=True)

    def on_before_optimizer_step(self, optimizer) -> None:
        # seed 003 tracks the gradient norm; it costs a pass over the grads, so sample it
        if self.grad_norm_every and self.global_step % self.grad_norm_every == 0:
            grads = [p.grad for p in self.net.parameters() if p.grad is not None]
            if grads:
                norm = torch.linalg.vector_norm(
                    torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                self.log("train/grad_norm", norm, on_step=True, on_epoch=False)

    def validation_step(self, batch, batch_idx):
        self._step(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self.val_acc.update_called:
            self.val_loss.reset()
            self.val_acc.reset()
            return
        acc = float(self.val_acc.compute())
        self._log_epoch("val", self.val_loss, self.val_acc, prog_bar=True)
        self.best_val_acc = acc if self.best_val_acc is None else max(self.best_val_acc, acc)
        self.log("val/acc_best", self.best_val_acc, prog_bar=True)

    def test_step(self, batch, batch_idx):
        _, logits = self._step(batch, self.test_loss, self.test_acc)
        self.test_class_acc.update(logits, batch[1])
        self.test_confusion.update(logits, batch[1])

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_loss, self.test_acc, prog_bar=False)
        per_class = self.test_class_acc.compute()
        for c, acc in enumerate(per_class.tolist()):
            self.log(f"test/acc_class_{c}", acc)
        self.test_results = {
            "per_class_acc": [round(a, 6) for a in per_class.tolist()],
            "confusion_matrix": self.test_confusion.compute().tolist(),
        }
        self.test_class_acc.reset()
        self.test_confusion.reset()

    def configure_optimizers(self):
        params = [p for p in self.net.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "monitor": self.scheduler_monitor,
                                 "interval": "epoch", "frequency": 1}}

    # Lightning saves the epoch-end checkpoint before the epoch's scheduler step, and a run
    # resumed from it never takes that step (ReduceLROnPlateau also needs the monitored
    # value, which Lightning does not save). We keep the value and take the missed steps,
    # so a resumed run follows the same learning-rate schedule as one that never stopped.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["best_val_acc"] = self.best_val_acc
        value = self.trainer.callback_metrics.get(self.scheduler_monitor)
        checkpoint["plateau_metric"] = None if value is None else float(value)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.best_val_acc = checkpoint.get("best_val_acc")
        self._plateau_metric_on_resume = checkpoint.get("plateau_metric")

    def on_train_start(self) -> None:
        metric = getattr(self, "_plateau_metric_on_resume", None)
        self._plateau_metric_on_resume = None
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != "epoch":
                continue
            scheduler = config.scheduler
            while scheduler.last_epoch < self.trainer.current_epoch:
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    if metric is None:
                        break
                    scheduler.step(metric)
                else:
                    scheduler.step()
