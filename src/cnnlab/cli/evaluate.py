"""cnnlab-eval: test a cnnlab checkpoint on the test set, rebuilt from the config it carries.

A checkpoint is data: it is read with ``torch.load(weights_only=True)``, and the config it
carries may only build cnnlab's kind of objects (``cnnlab.config.targets``) unless
``--trust`` says the user wrote it. Its data folder is read, never downloaded into, unless
the user names one with ``--data-root``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

from rich.table import Table
from rich.text import Text

from cnnlab.checkpoints import load_checkpoint
from cnnlab.cli import flags
from cnnlab.console import out, quiet
from cnnlab.errors import ArgumentError, BadInput
from cnnlab.files import write_bytes

# Lightning and the config builder are imported after the flags are checked: a bad flag is
# answered at once


def add_checkpoint_flags(parser) -> None:
    """The positional checkpoint and the flags that say how to rebuild it (cnnlab-eval,
    cnnlab-show)."""
    parser.add_argument("checkpoint", help="a .ckpt written by cnnlab-train")
    parser.add_argument(
        "--data-root", help="folder holding MNIST/raw/ (default: as trained, or $CNNLAB_DATA_DIR)"
    )
    parser.add_argument(
        "--dataset",
        choices=["mnist", "fashion_mnist"],
        help="evaluate on this dataset instead of the one it was trained on",
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="build whatever the checkpoint's config names (only for "
        "checkpoints you wrote yourself)",
    )


def build_from_flags(args):
    """``build_from_checkpoint`` as ``add_checkpoint_flags``' flags ask."""
    if args.data_root is not None and not args.data_root.strip():
        raise ArgumentError(
            "--data-root", args.data_root, "a folder holding MNIST/raw/ ('' is no folder)"
        )
    flags.out_dir("--data-root", args.data_root)
    root = args.data_root or os.environ.get("CNNLAB_DATA_DIR")
    return build_from_checkpoint(args.checkpoint, root, args.dataset, trust=args.trust)


def build_from_checkpoint(
    ckpt_path: str, data_root: str | None = None, dataset: str | None = None, trust: bool = False
):
    """(model, datamodule, config) from a checkpoint written by cnnlab-train."""
    from omegaconf import OmegaConf

    from cnnlab.config import targets
    from cnnlab.config.build import build

    ckpt = load_checkpoint(ckpt_path)
    meta = ckpt.get("cnnlab") if isinstance(ckpt, dict) else None
    if (
        not isinstance(meta, dict)
        or not isinstance(meta.get("config"), dict)
        or not {"data", "model"} <= set(meta["config"])
    ):
        raise BadInput(
            f"checkpoint {ckpt_path} was not written by cnnlab-train (it carries no run config)"
        )
    cfg = meta["config"]
    if not trust:  # what is built is the tree that was checked, resolved as data
        cfg = targets.check_data(cfg, f"the config inside checkpoint {ckpt_path}")
    cfg = OmegaConf.create(cfg)
    if data_root:
        cfg.data.root = data_root
    else:
        cfg.data.download = False  # a path from a file: read what is there, write nothing
    if dataset:
        cfg.data.name = dataset
    cfg.model.init_from = None  # the checkpoint's own weights are loaded below
    cfg.model.freeze = "none"
    if OmegaConf.select(cfg, "model.net.weights"):
        cfg.model.net.weights = None
    model = build(cfg, "model")
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, RuntimeError) as err:
        raise BadInput(
            f"checkpoint {ckpt_path}: its weights do not fit the model its config "
            f"builds ({str(err).splitlines()[0]})"
        ) from None
    return model, build(cfg, "data"), cfg


# what Lightning can run on here (its "tpu"/"hpu" need packages cnnlab does not install)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")


@flags.command("cnnlab-eval")
def main(argv: list[str] | None = None) -> int:
    parser = flags.Parser(prog="cnnlab-eval", description=__doc__)
    add_checkpoint_flags(parser)
    parser.add_argument("--accelerator", default="auto", choices=ACCELERATORS)
    parser.add_argument("--json", help="also write the metrics to this file")
    args = parser.parse_args(argv)
    flags.out_file("--json", args.json, _written_here)
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    # the files first (checkpoint, data), then the device: a bad file is one line with
    # nothing of Lightning's start-up printed before it
    model, datamodule, cfg = build_from_flags(args)
    datamodule.check_files()
    try:
        quiet()
        trainer = L.Trainer(
            accelerator=args.accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=False,
        )
    except (MisconfigurationException, RuntimeError) as err:  # e.g. gpu on a CPU-only machine
        raise ArgumentError(
            "--accelerator", args.accelerator, str(err).strip().splitlines()[0]
        ) from None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        result = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    metrics = {
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "dataset": cfg.data.name,
        "test/acc": result["test/acc"],
        "test/loss": result["test/loss"],
        **getattr(model, "test_results", {}),
    }
    table = Table(title=Text(f"cnnlab-eval · {args.checkpoint}"))
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("test/acc", f"{metrics['test/acc']:.4f}")
    table.add_row("test/loss", f"{metrics['test/loss']:.4f}")
    for c, acc in enumerate(metrics.get("per_class_acc", [])):
        table.add_row(f"class {c} acc", f"{acc:.4f}")
    out.print(table, markup=False)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(metrics, indent=2) + "\n"
        if _stream(path):  # /dev/stdout, a pipe: appended through (a >> log keeps its
            with path.open("a") as stream:  # lines), never truncated or renamed over
                stream.write(text)
        else:  # whole or not at all: a kill leaves no half file it could not replace
            write_bytes(path, text)
    return 0


def _written_here(path: Path) -> bool:
    """An earlier ``--json`` file of cnnlab-eval (replaced by a new evaluation), or a path
    with nothing to lose: an empty file, a device or pipe (``/dev/stdout``)."""
    try:  # such a file is a few hundred bytes; a checkpoint given by mistake is not read
        if _stream(path) or not path.is_file() or path.stat().st_size == 0:
            return True
        small = path.stat().st_size < 1 << 20
        return small and set(json.loads(path.read_text(errors="replace"))) >= set(JSON_KEYS)
    except (OSError, ValueError, TypeError):
        return False


JSON_KEYS = ("checkpoint", "dataset", "test/acc", "test/loss")


def _stream(path: Path) -> bool:
    """A device or pipe, or a link to one or into /proc (``/dev/stdout`` → /proc/self/fd/1,
    which may be a file the shell redirected to): to be written through, whatever it holds."""
    hop = path
    for _ in range(40):  # the link chain, each hop (realpath would end at the redirected file)
        if str(hop).startswith(("/dev/", "/proc/")):
            return True
        if not hop.is_symlink():
            break
        hop = hop.parent / os.readlink(hop)
    return path.exists() and not path.is_file()


if __name__ == "__main__":
    sys.exit(main())
