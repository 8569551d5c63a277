"""The LightningModule: loss, metrics and optimizers around any ``nn.Module`` classifier."""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from cnnlab.errors import ArgumentError, BadInput, Classes, NonNegative, checked
from cnnlab.nets.transfer import FREEZE_MODES, frozen_norm_layers_to_eval, init_from_checkpoint
from cnnlab.nets.transfer import freeze as freeze_net
from cnnlab.training.summary import layer_names

# scheduler arguments that cnnlab fills from the trainer when a config leaves them null:
# the number of scheduler steps of the whole fit (optimizer steps, or epochs)
FILLED_FROM_TRAINER = ("total_steps", "T_max")
# what the module logs once per epoch: what schedulers and callbacks may monitor
LOGGED = ("val/loss", "val/acc", "train/loss", "train/acc")
# torch.compile's modes; "default" is its mode=None, "reduce-overhead" adds CUDA graphs on a GPU
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class Classifier(L.LightningModule):
    """Cross-entropy classifier; optimizer and scheduler arrive as partials from Hydra.

    The scheduler steps once per epoch (``scheduler_interval: epoch``, e.g. seed 003's
    ReduceLROnPlateau) or after every optimizer step (``step``, e.g. OneCycleLR).
    """

    @checked
    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Optional[Callable[..., Any]] = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        scheduler_monitor: Literal[LOGGED] = "val/loss",  # type: ignore[valid-type]
        num_classes: Classes = 10,
        init_from: Optional[str] = None,
        freeze: Literal[FREEZE_MODES] = "none",  # type: ignore[valid-type]
        label_smoothing: Annotated[
            float,
            Field(
                ge=0,
                lt=1,
                description=("a fraction in [0, 1) of the target moved to the other classes"),
            ),
        ] = 0.0,
        grad_norm_every: NonNegative = 50,
        compile: Literal[COMPILE_MODES] = "none",  # type: ignore[valid-type]
        compile_backend: str = "inductor",
    ) -> None:
        super().__init__()
        # checked only when used: listing the backends imports torch._dynamo (seconds)
        if compile != "none":
            backends = torch.compiler.list_backends(exclude_tags=())
            if compile_backend not in backends:
                raise ArgumentError(
                    "compile_backend", compile_backend, f"one of {', '.join(backends)}"
                )
        self.compile_mode, self.compile_backend = compile, compile_backend
        self._net_compiled = False  # configure_model runs before fit, validate and test
        self.net = net
        if init_from:
            try:
                init_from_checkpoint(net, init_from)
            except FileNotFoundError:  # named by its key: model.init_from=...
                raise ArgumentError("init_from", init_from, "no such file") from None
            except (BadInput, OSError) as err:
                why = getattr(err, "reason", None) or str(err).splitlines()[0]
                raise ArgumentError("init_from", init_from, why) from None
        freeze_net(net, freeze)
        self.freeze_mode = freeze
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_interval, self.scheduler_monitor = scheduler_interval, scheduler_monitor
        self.label_smoothing, self.num_classes = label_smoothing, num_classes
        self.grad_norm_every = grad_norm_every
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_class_acc = MulticlassAccuracy(num_classes, average=None)
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.layers = [
            name
            for name, m in net.named_modules()
            if any(True for _ in m.parameters(recurse=False))
        ]
        # the gradient norms are logged under the model summary's layer names
        self.layer_names = layer_names(net, self.layers)
        self._train_steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._grad_norms: list[torch.Tensor] = []
        self._test_predictions: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.test_predictions: tuple[torch.Tensor, torch.Tensor] | None = None

    def configure_model(self) -> None:
        """torch.compile the net in place (``compile`` not ``none``): its parameters and
        state_dict keys stay the eager net's, so checkpoints, resume, cnnlab-eval and
        transfer read a compiled run's weights like any other. Lightning calls this hook
        before fit, validate and test."""
        if self.compile_mode != "none" and not self._net_compiled:
            mode = None if self.compile_mode == "default" else self.compile_mode
            self.net.compile(mode=mode, backend=self.compile_backend)
            self._net_compiled = True

    # Lightning sets ``_current_fx_name`` before and after every hook it calls, ~40 times a
    # training step; nn.Module.__setattr__'s parameter/module/buffer checks make each ~1.4 µs
    # against ~0.2 µs stored plainly (experiments/benchmark, §6). A hook name is never a
    # parameter, submodule or buffer, so storing it plainly is what nn.Module ends up doing.
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def _step(self, batch, loss_metric, acc_metric):
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        loss_metric.update(loss.detach(), weight=y.numel())
        acc_metric.update(logits.detach(), y)
        return loss, logits

    # The training step is the hot loop: a torchmetrics update there costs ~0.15 ms (1% of
    # a MyCNN step on a CPU, experiments/benchmark), so each step only keeps its loss and
    # predictions, on the device, and the metrics take them in once, when read.
    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = self.loss(logits, y)
        self._train_steps.append((loss.detach(), logits.detach().argmax(dim=1), y))
        return loss

    def epoch_train_metrics(self) -> dict[str, torch.Tensor]:
        """The epoch's training loss, accuracy and mean per-layer gradient norms so far."""
        if self._train_steps:
            losses, preds, targets = zip(*self._train_steps)
            self._train_steps.clear()
            losses = torch.stack(losses).to(self.device)  # a no-op but after a resume
            weights = torch.tensor(
                [len(t) for t in targets], device=self.device, dtype=losses.dtype
            )
            self.train_loss.update(losses, weight=weights)
            self.train_acc.update(
                torch.cat(preds).to(self.device), torch.cat(targets).to(self.device)
            )
        out: dict[str, torch.Tensor] = {}
        if self.train_acc.update_called:
            out = {"train/loss": self.train_loss.compute(), "train/acc": self.train_acc.compute()}
        if self._grad_norms:
            means = torch.stack([g.to(self.device) for g in self._grad_norms]).mean(dim=0)
            out.update({f"grad_norm/{name}": v for name, v in zip(self.layer_names, means)})
        return out

    # Metrics are logged once per epoch: each ``self.log`` of a Metric moves it to the
    # device and re-checks its metadata, ~0.3 ms per call (experiments/benchmark).
    def _log_epoch(self, stage: str, loss_metric: MeanMetric, acc_metric, prog_bar: bool) -> None:
        if acc_metric.update_called:
            self.log(f"{stage}/loss", loss_metric.compute(), prog_bar=prog_bar)
            self.log(f"{stage}/acc", acc_metric.compute(), prog_bar=prog_bar)
        loss_metric.reset()
        acc_metric.reset()

    def on_train_start(self) -> None:
        if self.freeze_mode != "none":  # a resumed epoch does not start with the hook below
            frozen_norm_layers_to_eval(self.net)
        self._catch_up_epoch_schedulers()

    def on_train_epoch_start(self) -> None:
        self._train_steps.clear()
        self._grad_norms.clear()
        if self.freeze_mode != "none":
            frozen_norm_layers_to_eval(self.net)
        self._catch_up_epoch_schedulers()

    def on_train_epoch_end(self) -> None:
        self.epoch_train_metrics()
        self._log_epoch("train", self.train_loss, self.train_acc, prog_bar=True)
        self._grad_norms.clear()

    def on_before_optimizer_step(self, optimizer) -> None:
        # seed 003 tracks the gradient norm; per layer it shows where gradients vanish
        # (seed 002). It costs a pass over the grads, so it is sampled.
        if not self.grad_norm_every or self.global_step % self.grad_norm_every:
            return
        norms = torch.stack(
            [
                torch.linalg.vector_norm(
                    torch.stack(
                        [
                            torch.linalg.vector_norm(p.grad)
                            for p in m.parameters(recurse=False)
                            if p.grad is not None
                        ]
                        or [torch.zeros((), device=self.device)]
                    )
                )
                for m in (self.net.get_submodule(name) for name in self.layers)
            ]
        )
        self._grad_norms.append(norms.detach())
        # Straight to the loggers, at the step measured: ``self.log(on_step=True)`` is
        # written only every ``log_every_n_steps`` (repeating a stale sample) and a sample
        # taken after an epoch's last write never appears.
        if not self.loggers:
            return
        metrics = {
            "train/grad_norm": float(torch.linalg.vector_norm(norms)),
            **{f"grad_norm/{n}": float(v) for n, v in zip(self.layer_names, norms)},
        }
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)

    def validation_step(self, batch, batch_idx):
        self._step(batch, self.val_loss, self.val_acc)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self.val_acc.update_called:
            self.val_loss.reset()
            self.val_acc.reset()
            return
        self._log_epoch("val", self.val_loss, self.val_acc, prog_bar=True)

    def test_step(self, batch, batch_idx):
        _, logits = self._step(batch, self.test_loss, self.test_acc)
        self.test_class_acc.update(logits, batch[1])
        self.test_confusion.update(logits, batch[1])
        self._test_predictions.append(
            (logits.argmax(dim=1).to(torch.uint8).cpu(), batch[1].to(torch.uint8).cpu())
        )

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
        if self._test_predictions:  # per image, in test-set order (cnnlab-compare's unit)
            preds, targets = zip(*self._test_predictions)
            self.test_predictions = (torch.cat(preds), torch.cat(targets))
        self._test_predictions.clear()

    @torch.no_grad()
    def eval_accuracy(self, batches) -> float:
        """Accuracy in eval mode (no dropout, batchnorm's running statistics) over
        (prepared images, labels) batches; the module's mode is restored after."""
        was_training = self.training
        self.eval()
        try:
            correct = total = 0
            for x, y in batches:
                correct += int((self(x).argmax(dim=1) == y).sum())
                total += len(y)
        finally:
            self.train(was_training)
        return correct / total if total else float("nan")

    # -- optimization -------------------------------------------------------------------

    def make_optimizer(
        self,
        net: nn.Module | None = None,
        factory: Callable[..., torch.optim.Optimizer] | None = None,
    ) -> torch.optim.Optimizer:
        params = [p for p in (net or self.net).parameters() if p.requires_grad]
        optimizer = (factory or self.optimizer_factory)(params=params)
        for group in optimizer.param_groups:  # torch accepts 0; it trains nothing
            if not group["lr"] > 0:
                raise ArgumentError("lr", group["lr"], "a learning rate > 0")
        return optimizer

    def make_scheduler(
        self,
        optimizer: torch.optim.Optimizer,
        total: int,
        factory: Callable[..., Any] | None = None,
    ) -> Any:
        """The scheduler, with a null ``total_steps``/``T_max`` set to ``total``."""
        factory = factory or self.scheduler_factory
        filled = {
            k: total
            for k in FILLED_FROM_TRAINER
            if isinstance(factory, partial)
            and k in factory.keywords
            and factory.keywords[k] is None
        }
        return factory(optimizer=optimizer, **filled)

    def scheduler_steps(self) -> int:
        """How many times the scheduler steps over the whole fit."""
        if self.scheduler_interval == "step":
            return int(self.trainer.estimated_stepping_batches)
        return int(self.trainer.max_epochs)

    def configure_optimizers(self):
        optimizer = self.make_optimizer()
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.make_scheduler(optimizer, self.scheduler_steps())
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.scheduler_monitor,
                "interval": self.scheduler_interval,
                "frequency": 1,
            },
        }

    def rehearse_optimization(
        self, optimizer: Callable | None = None, scheduler: Callable | None = None, steps: int = 2
    ) -> None:
        """Build an optimizer (and the given scheduler) on a throwaway copy of the net and
        step them: arguments torch reads only when stepping (a plateau's patience, a cycle's
        length) fail now, before any data is read, not at the end of the first epoch."""
        net = copy.deepcopy(self.net)
        opt = self.make_optimizer(net, optimizer)
        for p in (p for g in opt.param_groups for p in g["params"]):
            p.grad = torch.zeros_like(p)
        sched = None if scheduler is None else self.make_scheduler(opt, max(steps, 10), scheduler)
        for _ in range(steps):
            opt.step()
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(1.0)
            elif sched is not None:
                sched.step()

    # -- checkpoints ----------------------------------------------------------------------

    # Lightning saves the epoch-end checkpoint before the epoch's scheduler step, and a run
    # resumed from it never takes that step (ReduceLROnPlateau also needs the monitored
    # value, which Lightning does not save); a run resumed mid-epoch skips the step at the
    # end of that epoch. We keep the value and take the missed steps at the next epoch
    # start, so a resumed run follows the schedule of one that never stopped.
    # A checkpoint written mid-epoch (a run stopped by SIGTERM) also keeps the epoch's
    # buffered training predictions, so its train metrics come out as if it never stopped.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        value = self.trainer.callback_metrics.get(self.scheduler_monitor)
        checkpoint["plateau_metric"] = None if value is None else float(value)
        checkpoint["train_buffer"] = {
            "steps": [tuple(t.cpu() for t in step) for step in self._train_steps],
            "grad_norms": [t.cpu() for t in self._grad_norms],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._plateau_metric_on_resume = checkpoint.get("plateau_metric")
        buffer = checkpoint.get("train_buffer") or {}
        self._train_steps = [tuple(step) for step in buffer.get("steps", [])]
        self._grad_norms = list(buffer.get("grad_norms", []))

    def _catch_up_epoch_schedulers(self) -> None:
        metric = getattr(self, "_plateau_metric_on_resume", None)
        self._plateau_metric_on_resume = None
        if metric is None and self.scheduler_monitor in self.trainer.callback_metrics:
            metric = float(self.trainer.callback_metrics[self.scheduler_monitor])
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
