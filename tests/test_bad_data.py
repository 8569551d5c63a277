"""Data files that are valid IDX but wrong are refused before training: one line naming the
file and what is wrong, exit 2, nothing trained, no earlier run touched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST, crafted_checkpoint, results, run_dirs, train_inprocess
from idx_data import write_idx

RAW = ("MNIST", "raw")


def labels_as_images(raw: Path) -> None:
    shutil.copy(raw / "train-labels-idx1-ubyte", raw / "train-images-idx3-ubyte")


def t10k_as_train_images(raw: Path) -> None:
    shutil.copy(raw / "t10k-images-idx3-ubyte", raw / "train-images-idx3-ubyte")


def int16_pixels(raw: Path) -> None:
    write_idx(raw / "train-images-idx3-ubyte", np.full((320, 28, 28), 300), type_code=0x0B)


def wrong_image_size(raw: Path) -> None:
    write_idx(raw / "train-images-idx3-ubyte", np.zeros((320, 56, 14)))


def letters_as_labels(raw: Path) -> None:  # EMNIST letters: classes 1..26
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(320) % 26 + 1)


def a_directory(raw: Path) -> None:
    (raw / "t10k-labels-idx1-ubyte").unlink()
    (raw / "t10k-labels-idx1-ubyte").mkdir()


def bad_magic(raw: Path) -> None:
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\x1f\x8b\x08\x00" + bytes(100))


def unreadable(raw: Path) -> None:
    (raw / "train-labels-idx1-ubyte").chmod(0)


def refuse_unreadable(name: str):
    def opener(path, *args, **kwargs):
        if Path(path).name == name:
            raise PermissionError(13, "Permission denied", str(path))
        return open(path, *args, **kwargs)

    return opener


# how the data is broken -> (the file named, what the line says)
CASES = {
    "a labels file as the images": (
        labels_as_images,
        "train-images-idx3-ubyte",
        "holds labels (1-D)",
    ),
    "10k test images as the training images": (
        t10k_as_train_images,
        "train-images-idx3-ubyte",
        "holds 100 images but train-labels-idx1-ubyte holds 320 labels",
    ),
    "int16 pixels": (int16_pixels, "train-images-idx3-ubyte", "holds int16 values"),
    "56x14 images": (
        wrong_image_size,
        "train-images-idx3-ubyte",
        "holds 56x14 images; the dataset (data.name) and the net expect 28x28",
    ),
    "EMNIST letters as labels": (
        letters_as_labels,
        "train-labels-idx1-ubyte",
        "holds label 26, outside the classes 0..9",
    ),
    "a directory": (a_directory, "t10k-labels-idx1-ubyte", "is a directory, not a file"),
    "not IDX": (bad_magic, "t10k-images-idx3-ubyte", "is not an IDX file"),
    "unreadable": (unreadable, "train-labels-idx1-ubyte", "cannot be read"),
}


@pytest.fixture
def broken_data(tiny_data, tmp_path):
    """A copy of the tiny dataset, for one case to break; made readable again afterwards."""
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    yield root
    for f in (root / "MNIST" / "raw").iterdir():
        f.chmod(0o755 if f.is_dir() else 0o644)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def earlier_run(logs: Path) -> dict[str, bytes]:
    """A completed run already in the log folder, which a refused run must not touch."""
    old = logs / "runs" / "earlier"
    (old / "checkpoints").mkdir(parents=True)
    (old / "results.json").write_text('{"status": "completed"}\n')
    (old / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    return snapshot(logs)


def assert_one_line(err: str, prefix: str, *says: str) -> str:
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith(f"{prefix}:")]
    assert len(lines) == 1, err[-3000:]
    for text in says:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_file_is_one_line_naming_it(case, broken_data, tmp_path, monkeypatch, capsys):
    breaks, name, says = CASES[case]
    breaks(broken_data / Path(*RAW))
    if case == "unreadable" and os.geteuid() == 0:  # root reads any file: refuse as the OS would
        monkeypatch.setattr("cnnlab.data.idx.open", refuse_unreadable(name), raising=False)
    logs = tmp_path / "logs"
    before = earlier_run(logs)
    code, out, err = train_inprocess([*FAST, "logger=none"], monkeypatch, capsys, broken_data, logs)
    assert code == 2, err[-3000:]
    assert_one_line(err, "cnnlab", name, says)
    assert "Epoch" not in out  # nothing trained
    for d in run_dirs(logs):
        if d.name != "earlier":  # the refused run's own record says why, and holds no weights
            assert results(d)["status"] == "failed" and says in results(d)["error"]
            assert not (d / "checkpoints").exists()
    now = snapshot(logs)
    assert {k: now[k] for k in before} == before


def test_a_label_file_the_net_has_classes_for_is_accepted(
    broken_data, tmp_path, monkeypatch, capsys
):
    """The labels are checked against the configured classes, not against 10."""
    letters_as_labels(broken_data / Path(*RAW))
    write_idx(broken_data / Path(*RAW) / "t10k-labels-idx1-ubyte", np.arange(100) % 26 + 1)
    code, _, err = train_inprocess(
        [*FAST, "logger=none", "data.num_classes=27", "trainer.max_epochs=1"],
        monkeypatch,
        capsys,
        broken_data,
        tmp_path / "logs",
    )
    assert code == 0, err[-3000:]


@pytest.mark.parametrize(
    "case", ["10k test images as the training images", "a directory", "EMNIST letters as labels"]
)
def test_cnnlab_eval_data_root_checks_the_data_too(case, broken_data, tmp_path, capsys):
    from cnnlab.cli.evaluate import main

    breaks, name, says = CASES[case]
    breaks(broken_data / Path(*RAW))
    ckpt = crafted_checkpoint(tmp_path, {"_target_": "cnnlab.nets.MyCNN"})  # an honest one
    capsys.readouterr()
    code = main([str(ckpt), "--data-root", str(broken_data), "--accelerator", "cpu"])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert_one_line(err, "cnnlab-eval", name, says)
