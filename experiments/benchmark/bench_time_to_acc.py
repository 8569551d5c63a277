"""Time to 99% test accuracy: cnnlab vs a plain PyTorch loop of the same recipe.

A recipe is a cnnlab experiment config; both arms take everything from it:

  fast     experiment=fast: the anchor's net, batch 256, Adam(1e-2, betas (0.7, 0.9)),
           OneCycleLR stepped every batch, one epoch over all 60k images, no validation
  seed003  experiment=baseline: MyCNN, batch 64, Adam(1e-3, amsgrad, wd 1e-5),
           ReduceLROnPlateau on the validation loss, early stopping (patience 7),
           10 epochs over the 48k/12k split

  (c) cnnlab: its DataModule, Classifier and checked Trainer built from the composed
      config, with the callbacks every cnnlab-train run has per step and per epoch
      (per-epoch seeding, history, the NaN guard) and the recipe's own (early stopping)
  (p) a plain loop over preloaded, normalized tensors on the device: the same net
      (instantiated from the same config node after the same seed: identical initial
      weights, checked), optimizer, scheduler (stepped per batch or per epoch as the
      config says, its length counted by hand), loss, batch size, shuffle order (cnnlab's
      (seed, epoch) permutation), validation pass and early stopping

Repetition r trains both arms with seed r+1, in rotated order (p c, c p, ...), every
recipe in turn, with garbage collected before each fit. The clock runs over the training
epochs (with the recipe's validation pass, which its scheduler and early stopping read),
the device synchronised at both ends; the test set is evaluated after every epoch
outside the clock, by one function for both arms. Reported per arm: training seconds to
the first evaluation at >= the target, training seconds of the whole recipe, and the
final test accuracy; and the ratio cnnlab/plain.

    python experiments/benchmark/bench_time_to_acc.py --recipes fast --reps 5
    python experiments/benchmark/bench_time_to_acc.py --recipes seed003 --reps 3 --stop-at-target
    python experiments/benchmark/bench_time_to_acc.py --quick                    # smoke test
    python experiments/benchmark/bench_time_to_acc.py --device cuda --reps 5
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
import warnings
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench_epoch import (  # noqa: E402
    DATA_ROOT,
    EpochTimer,
    compose_cnnlab,
    peak_memory,
    setup_process,
    sync,
)

RECIPES = {
    "fast": ["experiment=fast"],
    "fast_mycnn": ["experiment=fast_mycnn"],
    "seed003": ["experiment=baseline"],
}
TARGET_RATIO = 1.03  # issue 24: cnnlab/plain <= 1.03 on the fast recipe at 2 threads
ARMS = {"p": "plain PyTorch loop", "c": "cnnlab"}


def recipe_config(name: str, seed: int, args, extra: list[str] = ()):
    device = "gpu" if args.device == "cuda" else "cpu"
    overrides = [
        *RECIPES[name],
        f"seed={seed}",
        f"data.root={args.data_root}",
        "paths.output_dir=/tmp/cnnlab-bench",
        "run_name=bench",
        "logger=none",
        "test=false",
        f"trainer.accelerator={device}",
        # what a benchmark does not need: bars, tables, files
        "callbacks.progress_bar=null",
        "callbacks.model_summary=null",
        "callbacks.lr_monitor=null",
        "callbacks.model_checkpoint=null",
        "+trainer.enable_checkpointing=false",
        "+trainer.enable_progress_bar=false",
        *args.override,
        *extra,
    ]
    if args.batches:
        overrides.append(f"trainer.limit_train_batches={args.batches}")
    if args.max_epochs:
        overrides.append(f"trainer.max_epochs={args.max_epochs}")
    return compose_cnnlab(overrides)


class TestSet:
    """The test split, normalized once, on the device; one accuracy function for both arms."""

    def __init__(self, dm, device: torch.device) -> None:
        images, labels = dm.splits["test"]
        self.x = normalized(images, dm).to(device)
        self.y = labels.to(device)
        self.batch = dm.eval_batch_size

    @torch.no_grad()
    def accuracy(self, net: torch.nn.Module) -> float:
        was_training = net.training
        net.eval()
        correct = sum(
            int((net(x).argmax(1) == y).sum())
            for x, y in zip(self.x.split(self.batch), self.y.split(self.batch))
        )
        net.train(was_training)
        return correct / len(self.y)


def normalized(images: torch.Tensor, dm) -> torch.Tensor:
    return (images.float() / 255 - dm.mean) / dm.std


class Record:
    """Per-epoch training seconds and test accuracy of one fit."""

    def __init__(self, target: float, stop_at_target: bool) -> None:
        self.target, self.stop_at_target = target, stop_at_target
        self.epochs: list[dict] = []
        self.train_s = 0.0

    def add(self, seconds: float, acc: float) -> bool:
        """Record an epoch; True when the fit should stop here."""
        self.train_s += seconds
        self.epochs.append(
            {"epoch": len(self.epochs) + 1, "s": seconds, "train_s": self.train_s, "test_acc": acc}
        )
        return self.stop_at_target and acc >= self.target

    def result(self) -> dict:
        hit = next((e for e in self.epochs if e["test_acc"] >= self.target), None)
        return {
            "train_s": self.train_s,
            "epochs": self.epochs,
            "final_acc": self.epochs[-1]["test_acc"] if self.epochs else None,
            "t_target": hit and hit["train_s"],
            "epoch_target": hit and hit["epoch"],
            "s_per_epoch": self.train_s / max(len(self.epochs), 1),
        }


def plain(
    cfg, data: dict, test: TestSet, device: torch.device, record: Record, batches: int | None
) -> dict:
    """The recipe by hand: no Lightning, no cnnlab objects but the config's values."""
    from hydra.utils import instantiate
    from lightning.pytorch import seed_everything

    from cnnlab import seeding

    if cfg.data.augmentation.get("name", "none") != "none":
        raise SystemExit("the plain loop has no augmentation; pick a recipe without it")
    seed_everything(cfg.seed, verbose=False)  # as cnnlab's runner, before building the net
    net = instantiate(cfg.model.net, _convert_="all").to(device)
    init = {k: v.clone() for k, v in net.state_dict().items()}
    params = [p for p in net.parameters() if p.requires_grad]
    opt = instantiate(cfg.model.optimizer, _convert_="all")(params=params)
    x, y = data["train"]
    bs, epochs = cfg.data.batch_size, cfg.trainer.max_epochs
    per_epoch = math.ceil(len(y) / bs) if not batches else min(batches, math.ceil(len(y) / bs))
    sched, per_step = None, cfg.model.scheduler_interval == "step"
    if cfg.model.get("scheduler") is not None:
        factory = instantiate(cfg.model.scheduler, _convert_="all")
        length = per_epoch * epochs if per_step else epochs
        fill = {
            k: length
            for k in ("total_steps", "T_max")
            if isinstance(factory, partial) and factory.keywords.get(k, 0) is None
        }
        sched = factory(optimizer=opt, **fill)
    plateau = isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    stopping = (cfg.get("callbacks") or {}).get("early_stopping")
    best, waited = math.inf, 0
    smoothing, clip = cfg.model.label_smoothing, cfg.trainer.gradient_clip_val
    val = data.get("val") if cfg.data.get("validation", True) else None
    for epoch in range(epochs):
        gen = torch.Generator().manual_seed(seeding.shuffle_seed(cfg.seed, epoch))
        sync(device)
        t0 = time.perf_counter()
        order = torch.randperm(len(y), generator=gen).to(device)
        for b, idx in enumerate(order.split(bs)):
            if b >= per_epoch:
                break
            loss = F.cross_entropy(net(x[idx]), y[idx], label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            if sched is not None and per_step:
                sched.step()
        val_loss = None
        if val is not None:  # the recipe's validation pass: its scheduler and stopping read it
            net.eval()
            with torch.no_grad():
                total = sum(
                    F.cross_entropy(net(vx), vy, reduction="sum", label_smoothing=smoothing)
                    for vx, vy in zip(
                        val[0].split(cfg.data.eval_batch_size),
                        val[1].split(cfg.data.eval_batch_size),
                    )
                )
                val_loss = float(total) / len(val[1])
            net.train()
        sync(device)
        seconds = time.perf_counter() - t0
        stop = record.add(seconds, test.accuracy(net))
        if sched is not None and not per_step:
            sched.step(val_loss) if plateau else sched.step()
        if stopping and val_loss is not None:  # Lightning's rule: strictly better, or wait
            best, waited = (val_loss, 0) if val_loss < best else (best, waited + 1)
            stop = stop or waited >= stopping.patience
        if stop:
            break
    return {**record.result(), "init": init}


class Measure(EpochTimer):
    """The epoch's seconds (device synchronised), then the test accuracy off the clock."""

    def __init__(self, test: TestSet, record: Record) -> None:
        self.test, self.record = test, record
        self.fit_t0 = time.perf_counter()  # reset when fit is called
        self.start_s: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        super().on_train_epoch_start(trainer, pl_module)
        if self.start_s is None:  # fit start-up: setup, optimizers, sanity validation
            self.start_s = self.t0 - self.fit_t0

    def on_train_epoch_end(self, trainer, pl_module):
        super().on_train_epoch_end(trainer, pl_module)
        if self.record.add(self.seconds, self.test.accuracy(pl_module.net)):
            trainer.should_stop = True


def cnnlab(cfg, test: TestSet, record: Record) -> dict:
    from hydra.utils import instantiate
    from lightning.pytorch import seed_everything

    from cnnlab.training import callbacks as cb

    seed_everything(cfg.seed, verbose=False)  # as cnnlab's runner, before building
    dm = instantiate(cfg.data, _convert_="all")
    model = instantiate(cfg.model, _convert_="all")
    init = {k: v.clone() for k, v in model.net.state_dict().items()}
    measure = Measure(test, record)
    own = [instantiate(c, _convert_="all") for c in (cfg.callbacks or {}).values() if c]
    required = [cb.EpochSeed(cfg.seed), cb.History(), cb.FiniteLossGuard()]
    trainer = instantiate(cfg.trainer, callbacks=[measure, *own, *required], logger=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measure.fit_t0 = time.perf_counter()
        trainer.fit(model, datamodule=dm)
    return {**record.result(), "init": init, "startup_s": measure.start_s}


def run_recipe(name: str, seed: int, arm: str, args, shared: dict) -> dict:
    cfg = recipe_config(name, seed, args)
    record = Record(args.target, args.stop_at_target)
    gc.collect()
    if arm == "p":
        out = plain(cfg, shared["data"], shared["test"], shared["device"], record, args.batches)
    else:
        out = cnnlab(cfg, shared["test"], record)
    return out


def prepare(name: str, args, device: torch.device) -> dict:
    """The recipe's splits (as cnnlab's DataModule draws them), normalized, on the device."""
    from hydra.utils import instantiate

    cfg = recipe_config(name, 0, args)
    dm = instantiate(cfg.data, _convert_="all")
    dm.setup("fit")
    data = {
        k: (normalized(images, dm).to(device), labels.to(device))
        for k, (images, labels) in dm.splits.items()
        if k != "test"
    }
    return {"data": data, "test": TestSet(dm, device), "device": device, "cfg": cfg}


def same_init(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def summary(name: str, runs: dict, args, console) -> dict:
    from rich.table import Table

    stats = {}
    table = Table(
        title=f"{name}: time to {args.target:.1%} test accuracy · {args.device} · "
        f"{torch.get_num_threads()} threads · {len(runs['p'])} reps"
    )
    for col in (
        "arm",
        "to target: median s (reps reaching it)",
        "whole recipe: median s",
        "median s/epoch",
        "final test acc: mean ± sd",
        "per seed",
    ):
        table.add_column(col, justify="left" if col in ("arm", "per seed") else "right")
    for arm, label in ARMS.items():
        rs = runs[arm]
        hits = [r["t_target"] for r in rs if r["t_target"] is not None]
        accs = [r["final_acc"] for r in rs]
        st = {
            "t_target": statistics.median(hits) if hits else None,
            "reached": len(hits),
            "train_s": statistics.median(r["train_s"] for r in rs),
            "s_per_epoch": statistics.median(r["s_per_epoch"] for r in rs),
            "acc_mean": statistics.fmean(accs),
            "acc_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        }
        stats[arm] = st
        table.add_row(
            label,
            f"{st['t_target']:.2f} ({len(hits)}/{len(rs)})"
            if hits
            else f"not reached (0/{len(rs)})",
            f"{st['train_s']:.2f}",
            f"{st['s_per_epoch']:.2f}",
            f"{st['acc_mean']:.4f} ± {st['acc_sd']:.4f}",
            " ".join(f"{a:.4f}" for a in accs),
        )
    console.print(table)
    startup = [r["startup_s"] for r in runs["c"] if r.get("startup_s") is not None]
    if startup:
        console.print(
            f"cnnlab fit start-up before the first epoch (not in the clock): "
            f"median {statistics.median(startup):.2f} s"
        )
    paired_epoch = [c["s_per_epoch"] / p["s_per_epoch"] for p, c in zip(runs["p"], runs["c"])]
    both = [
        (p["t_target"], c["t_target"])
        for p, c in zip(runs["p"], runs["c"])
        if p["t_target"] is not None and c["t_target"] is not None
    ]
    ratio = (
        statistics.median(c for _, c in both) / statistics.median(p for p, _ in both)
        if both
        else None
    )
    epoch_ratio = stats["c"]["s_per_epoch"] / stats["p"]["s_per_epoch"]

    def verdict(value: float) -> str:
        return "[green]PASS[/]" if value <= TARGET_RATIO else "[red]MISS[/]"

    console.print(
        f"cnnlab/plain, time to {args.target:.1%}: "
        + (
            f"{ratio:.3f}  (target ≤ {TARGET_RATIO:.2f}) {verdict(ratio)}  "
            f"[{len(both)} of {len(runs['p'])} reps, where both arms reached it]"
            if ratio is not None
            else "n/a (not reached)"
        )
    )
    # every rep, reached or not: the same epochs of the same recipe from the same weights
    console.print(
        f"cnnlab/plain, seconds per epoch: {epoch_ratio:.3f}  (target ≤ "
        f"{TARGET_RATIO:.2f}) {verdict(epoch_ratio)}  per repetition: "
        + " ".join(f"{r:.3f}" for r in paired_epoch)
    )
    return {
        "arms": stats,
        "ratio_time_to_target": ratio,
        "ratio_s_per_epoch": epoch_ratio,
        "paired_s_per_epoch": paired_epoch,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--recipes", default="fast,seed003", help=f"comma-separated, of {list(RECIPES)}"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--reps", type=int, default=5, help="seeds 1..reps, both arms each")
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument(
        "--stop-at-target",
        action="store_true",
        help="end a fit at its first evaluation >= target (else the whole recipe)",
    )
    parser.add_argument("--max-epochs", type=int, default=None, help="override the recipes' epochs")
    parser.add_argument("--batches", type=int, default=None, help="training batches per epoch")
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 rep, 20 batches per epoch, 1 epoch"
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a cnnlab config override for every recipe (repeatable)",
    )
    parser.add_argument(
        "--malloc",
        default="tuned",
        choices=["tuned", "default"],
        help="tuned: glibc thresholds of conf/train.yaml cpu_malloc, as "
        "cnnlab-train sets them (process-wide: both arms get them)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-root", default=DATA_ROOT)
    parser.add_argument("--json", type=Path, help="write every fit's numbers here")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.batches, args.max_epochs = 1, args.batches or 20, 1
    recipes = [r for r in args.recipes.split(",") if r]
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {unknown}; choose from {list(RECIPES)}")
    setup_process(args.threads, args.malloc)
    import logging

    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no per-fit banners and tips
    device = torch.device(args.device)
    from hydra.utils import instantiate

    shared = {name: prepare(name, args, device) for name in recipes}
    # the process-wide torch flags cnnlab's Trainer sets (deterministic kernels where torch
    # has them, cudnn.benchmark off) hold for both arms from the first fit on
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instantiate(shared[recipes[0]]["cfg"].trainer, logger=False)
    # warm-up, untimed: kernels, allocator, first-call costs of both arms
    warm = argparse.Namespace(
        **{**vars(args), "batches": 5, "max_epochs": 1, "stop_at_target": False}
    )
    for arm in ARMS:
        run_recipe(recipes[0], 0, arm, warm, shared[recipes[0]])

    from rich.console import Console

    console = Console()
    runs = {name: {arm: [] for arm in ARMS} for name in recipes}
    keys = list(ARMS)
    for rep in range(args.reps):
        seed = rep + 1
        for name in recipes:
            for arm in keys[rep % 2 :] + keys[: rep % 2]:  # p c, then c p, ...
                out = run_recipe(name, seed, arm, args, shared[name])
                runs[name][arm].append(out)
                curve = " ".join(f"{e['test_acc']:.4f}" for e in out["epochs"])
                print(
                    f"rep {rep + 1}/{args.reps} seed {seed} {name} ({arm}) "
                    f"{out['train_s']:.2f} s, test acc by epoch: {curve}",
                    file=sys.stderr,
                )
            p, c = runs[name]["p"][-1], runs[name]["c"][-1]
            if not same_init(p.pop("init"), c.pop("init")):
                raise SystemExit(f"{name}, seed {seed}: the arms started from different weights")
    report = {
        "device": args.device,
        "threads": torch.get_num_threads(),
        "reps": args.reps,
        "target": args.target,
        "stop_at_target": args.stop_at_target,
        "batches": args.batches,
        "max_epochs": args.max_epochs,
        "malloc": args.malloc,
        "recipes": {},
    }
    for name in recipes:
        report["recipes"][name] = {**summary(name, runs[name], args, console), "runs": runs[name]}
    console.print(f"peak memory of the process: {peak_memory(device)}")
    console.print("[dim]both arms started from identical weights for every seed (checked)[/]")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
