"""Seconds per training epoch: plain PyTorch vs the DataLoader+PIL tutorial vs cnnlab.

All four variants run in ONE process, on the same training split, model (seed 003's
MyCNN), batch size and optimizer, interleaved (a, b, c, d, a, b, ...), and the medians
are compared as ratios, so machine noise hits every variant alike.

  (a) plain loop over preloaded, normalized tensors (the floor)
  (b) torchvision MNIST + DataLoader + PIL RandomRotation(10) + ToTensor + Normalize
  (c) cnnlab's own path (its DataModule, LightningModule, Trainer), no augmentation
  (d) cnnlab with rotation augmentation (per-sample, batched, on the device)

    python experiments/benchmark/bench_epoch.py --quick
    python experiments/benchmark/bench_epoch.py --reps 3 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"c/a": 1.05, "d/a": 1.10, "d/b": 0.70}  # CPU targets of issue 5


def compose_cnnlab(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from cnnlab.train import CONF_DIR  # registers the resolvers

    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        return compose("train", overrides=overrides)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Bench:
    def __init__(self, args) -> None:
        from hydra.utils import instantiate

        self.args, self.device = args, torch.device(args.device)
        base = [f"data.root={args.data_root}", "paths.output_dir=/tmp/cnnlab-bench",
                "run_name=bench", "logger=none", "callbacks=none", "test=false",
                "model/scheduler=none",  # no validation here, so nothing to plateau on
                f"trainer.accelerator={'gpu' if self.device.type == 'cuda' else 'cpu'}",
                "trainer.max_epochs=1", "trainer.limit_val_batches=0",
                "trainer.num_sanity_val_steps=0", "+trainer.enable_checkpointing=false",
                "+trainer.enable_progress_bar=false"]
        if args.batches:
            base.append(f"trainer.limit_train_batches={args.batches}")
        self.cfgs = {k: compose_cnnlab(base + [f"data/augmentation={aug}"])
                     for k, aug in (("c", "none"), ("d", "rotation"))}
        cfg = self.cfgs["c"]
        self.batch_size = cfg.data.batch_size
        self.datamodules = {k: instantiate(c.data) for k, c in self.cfgs.items()}
        for dm in self.datamodules.values():
            dm.setup("fit")
        images, labels = self.datamodules["c"].splits["train"]
        self.n = len(labels) if not args.batches else min(len(labels), args.batches * self.batch_size)
        # (a): the same split, normalized once, on the device
        self.x = ((images.float() / 255 - cfg.data.mean) / cfg.data.std).to(self.device)
        self.y = labels.to(self.device)
        # (b): torchvision's dataset over the same training indices
        import torchvision
        from torchvision import transforms

        tf = transforms.Compose([transforms.RandomRotation(10), transforms.ToTensor(),
                                 transforms.Normalize((cfg.data.mean,), (cfg.data.std,))])
        full = torchvision.datasets.MNIST(args.data_root, train=True, transform=tf)
        g = torch.Generator().manual_seed(cfg.data.split_seed)
        perm = torch.randperm(len(full), generator=g)
        n_val = int(round(len(full) * cfg.data.val_fraction))
        self.tutorial = torch.utils.data.Subset(full, perm[n_val:].sort().values.tolist())

    def model(self):
        from hydra.utils import instantiate
        return instantiate(self.cfgs["c"].model)

    def plain(self) -> float:
        net = self.model().net.to(self.device)
        opt = self.model_optimizer(net)
        sync(self.device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(self.y), device=self.device)[: self.n]
        for idx in perm.split(self.batch_size):
            loss = F.cross_entropy(net(self.x[idx]), self.y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(self.device)
        return time.perf_counter() - t0

    def model_optimizer(self, net):
        from hydra.utils import instantiate
        return instantiate(self.cfgs["c"].model.optimizer)(params=net.parameters())

    def tutorial_loop(self) -> float:
        net = self.model().net.to(self.device)
        opt = self.model_optimizer(net)
        loader = torch.utils.data.DataLoader(self.tutorial, batch_size=self.batch_size,
                                             shuffle=True, num_workers=0,
                                             pin_memory=self.device.type == "cuda")
        sync(self.device)
        t0 = time.perf_counter()
        for b, (x, y) in enumerate(loader):
            if self.args.batches and b >= self.args.batches:
                break
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(self.device)
        return time.perf_counter() - t0

    def cnnlab(self, key: str) -> float:
        from hydra.utils import instantiate
        from lightning.pytorch.callbacks import Callback

        class EpochTimer(Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                sync(pl_module.device)
                self.t0 = time.perf_counter()

            def on_train_epoch_end(self, trainer, pl_module):
                sync(pl_module.device)
                self.seconds = time.perf_counter() - self.t0

        timer = EpochTimer()
        trainer = instantiate(self.cfgs[key].trainer, callbacks=[timer], logger=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(self.model(), datamodule=self.datamodules[key])
        return timer.seconds


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB RSS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--batches", type=int, default=None, help="batches per epoch, all variants")
    parser.add_argument("--quick", action="store_true", help="150 batches, 2 reps (~1 min on 2 cores)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-root", default=os.environ.get("CNNLAB_DATA_DIR",
                                                                str(REPO.parent / "shared" / "data")))
    parser.add_argument("--json", type=Path, help="write the raw timings here")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.reps = args.batches or 150, min(args.reps, 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    torch.manual_seed(0)
    bench = Bench(args)
    variants = {"a": ("plain PyTorch loop, preloaded tensors", bench.plain),
                "b": ("DataLoader + PIL RandomRotation(10)", bench.tutorial_loop),
                "c": ("cnnlab, no augmentation", lambda: bench.cnnlab("c")),
                "d": ("cnnlab, rotation augmentation", lambda: bench.cnnlab("d"))}
    bench.plain()  # warm-up: kernels and allocator, shared by every variant in this process
    times: dict[str, list[float]] = {k: [] for k in variants}
    for rep in range(args.reps):
        for k, (_, fn) in variants.items():
            times[k].append(fn())
            print(f"rep {rep + 1}/{args.reps} ({k}) {times[k][-1]:.2f} s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items()}

    from rich.console import Console
    from rich.table import Table

    n_img = bench.n
    table = Table(title=f"seconds per training epoch · {n_img} images · batch {bench.batch_size} "
                        f"· {args.device} · {torch.get_num_threads()} threads · {args.reps} reps")
    for col in ("", "variant", "median s", "all reps (s)", "images/s"):
        table.add_column(col, justify="right" if col not in ("", "variant") else "left")
    for k, (name, _) in variants.items():
        table.add_row(k, name, f"{med[k]:.2f}", " ".join(f"{t:.2f}" for t in times[k]),
                      f"{n_img / med[k]:,.0f}")
    console = Console()
    console.print(table)
    console.print(f"peak memory: {peak_memory(bench.device)}")
    ratios = {"c/a": med["c"] / med["a"], "d/a": med["d"] / med["a"], "d/b": med["d"] / med["b"]}
    for name, value in ratios.items():
        target = TARGETS[name]
        verdict = "[green]PASS[/]" if value <= target else "[red]MISS[/]"
        console.print(f"{name} = {value:.3f}   (target ≤ {target:.2f}) {verdict}")
    if args.json:
        args.json.write_text(json.dumps({"times": times, "medians": med, "ratios": ratios,
                                         "images": n_img, "device": args.device,
                                         "threads": torch.get_num_threads()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
