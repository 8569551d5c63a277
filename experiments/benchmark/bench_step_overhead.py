"""Fixed cost per training step of Lightning and of cnnlab, with the network's time removed.

A tiny linear net makes the step's own compute ~0.6 ms, so what the framework adds per
step shows directly, in milliseconds over a plain loop (the same process, interleaved):

  plain      hand-written loop over preloaded tensors
  lightning  a bare LightningModule over pre-made batches: Lightning's loop alone
  cnnlab     cnnlab's DataModule (index batch, uint8→float, normalize) and Classifier
  cnnlab+aug the same with rotation augmentation

    python experiments/benchmark/bench_step_overhead.py
"""

from __future__ import annotations

import argparse
import gc
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.config.build import make_object as instantiate  # as cnnlab-train does

sys.path.insert(0, str(Path(__file__).parent))
from bench_epoch import DATA_ROOT, EpochTimer, compose_cnnlab  # noqa: E402


def tiny() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10))


class Bare(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny()

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters())


class Batches:
    def __init__(self, batches) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--steps", type=int, default=750)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--data-root", default=DATA_ROOT)
    args = p.parse_args()
    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    base = [
        f"data.root={args.data_root}",
        "logger=none",
        "callbacks=none",
        "test=false",
        "model/scheduler=none",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_val_batches=0",
        "trainer.num_sanity_val_steps=0",
        "+trainer.enable_checkpointing=false",
        "+trainer.enable_progress_bar=false",
        f"trainer.limit_train_batches={args.steps}",
        "paths.output_dir=/tmp/cnnlab-bench",
    ]
    cfgs = {
        aug: compose_cnnlab(base + [f"data/augmentation={aug}"]) for aug in ("none", "rotation")
    }
    from cnnlab.run import resources

    # as cnnlab-train sets up its process: malloc, and no failing NVML probe at every Adam
    # step (Lightning's import asks for it; without NVML each ask dlopens in vain, ~0.1-0.4
    # ms a step in every variant here, the plain loop too)
    resources.apply(None, cfgs["none"].cpu_malloc)
    dm = instantiate(cfgs["none"].data)
    dm.setup("fit")
    images, labels = dm.splits["train"]
    x = (images.float() / 255 - dm.mean) / dm.std
    bs = dm.batch_size

    def plain() -> float:
        net = tiny()
        opt = torch.optim.Adam(net.parameters())
        t0 = time.perf_counter()
        for idx in torch.randperm(len(labels))[: args.steps * bs].split(bs):
            loss = F.cross_entropy(net(x[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t0

    def fit(model, data, cfg=None) -> float:
        timer = EpochTimer()
        if cfg is None:
            trainer = L.Trainer(
                accelerator="cpu",
                max_epochs=1,
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
                callbacks=[timer],
                limit_train_batches=args.steps,
                num_sanity_val_steps=0,
            )
        else:
            trainer = instantiate(cfg.trainer, callbacks=[timer], logger=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if cfg is None:
                trainer.fit(model, data)
            else:
                trainer.fit(model, datamodule=data)
        return timer.seconds

    def lightning() -> float:
        order = torch.randperm(len(labels))[: args.steps * bs].split(bs)
        return fit(Bare(), Batches([(x[i], labels[i]) for i in order]))

    def cnnlab(aug: str) -> float:
        cfg = cfgs[aug]
        model = instantiate(cfg.model, net=tiny())
        model.example_input_array = None
        return fit(model, instantiate(cfg.data), cfg)

    variants = {
        "plain": plain,
        "lightning": lightning,
        "cnnlab": lambda: cnnlab("none"),
        "cnnlab+aug": lambda: cnnlab("rotation"),
    }
    for fn in variants.values():  # warm-up
        fn()
    times = {k: [] for k in variants}
    keys = list(variants)
    for rep in range(args.reps):
        for k in keys[rep % len(keys) :] + keys[: rep % len(keys)]:
            gc.collect()
            times[k].append(variants[k]())
    base_ms = statistics.median(times["plain"]) / args.steps * 1e3
    print(
        f"{args.steps} steps, batch {bs}, tiny linear net, {torch.get_num_threads()} threads, "
        f"{args.reps} reps (medians)"
    )
    for k in variants:
        ms = statistics.median(times[k]) / args.steps * 1e3
        print(f"  {k:11s} {ms:6.3f} ms/step   +{ms - base_ms:.3f} ms over plain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
