"""cnnlab-eval: test a cnnlab checkpoint on the test set, rebuilt from the config it carries."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cnnlab.nets.transfer import load_checkpoint


def build_from_checkpoint(ckpt_path: str, data_root: str | None = None,
                          dataset: str | None = None):
    """(model, datamodule, config) from a checkpoint written by cnnlab-train."""
    import torch  # noqa: F401
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    ckpt = load_checkpoint(ckpt_path)
    meta = ckpt.get("cnnlab")
    if not meta or "config" not in meta:
        raise ValueError(f"checkpoint {ckpt_path} was not written by cnnlab-train "
                         "(it carries no run config)")
    cfg = OmegaConf.create(meta["config"])
    if data_root:
        cfg.data.root = data_root
    if dataset:
        cfg.data.name = dataset
    cfg.model.init_from = None  # the checkpoint's own weights are loaded below
    cfg.model.freeze = "none"
    if OmegaConf.select(cfg, "model.net.weights"):
        cfg.model.net.weights = None
    model = instantiate(cfg.model)
    state = {k: v for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(state, strict=True)
    datamodule = instantiate(cfg.data)
    return model, datamodule, cfg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cnnlab-eval", description=__doc__)
    parser.add_argument("checkpoint", help="a .ckpt written by cnnlab-train")
    parser.add_argument("--data-root", help="folder holding MNIST/raw/ (default: as trained, "
                        "or $CNNLAB_DATA_DIR)")
    parser.add_argument("--dataset", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--json", help="also write the metrics to this file")
    args = parser.parse_args(argv)
    err = Console(stderr=True, soft_wrap=True)
    import os

    import lightning as L

    root = args.data_root or os.environ.get("CNNLAB_DATA_DIR")
    try:
        model, datamodule, cfg = build_from_checkpoint(args.checkpoint, root, args.dataset)
        datamodule.ensure_files()
    except (FileNotFoundError, ValueError) as e:
        err.print(f"[bold red]cnnlab-eval:[/] {str(e).splitlines()[0]}", highlight=False)
        return 2
    trainer = L.Trainer(accelerator=args.accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_model_summary=False,
                        enable_progress_bar=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        out = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    metrics = {"checkpoint": str(Path(args.checkpoint).resolve()), "dataset": cfg.data.name,
               "test/acc": out["test/acc"], "test/loss": out["test/loss"],
               **getattr(model, "test_results", {})}
    table = Table(title=f"cnnlab-eval · {args.checkpoint}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("test/acc", f"{metrics['test/acc']:.4f}")
    table.add_row("test/loss", f"{metrics['test/loss']:.4f}")
    for c, acc in enumerate(metrics.get("per_class_acc", [])):
        table.add_row(f"class {c} acc", f"{acc:.4f}")
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
