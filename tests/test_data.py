"""DataModule over tiny IDX files written by the tests."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
import torch

from cnnlab.data import BatchAugment, MNISTDataModule
from cnnlab.data.batches import Batch
from cnnlab.errors import ArgumentError, BadInput
from idx_data import make_dataset


def dm(root: Path, **kw) -> MNISTDataModule:
    kw.setdefault("download", False)
    m = MNISTDataModule(root=str(root), batch_size=32, eval_batch_size=50, **kw)
    m.setup()
    return m


def first_batch(m: MNISTDataModule, split: str, training: bool, epoch: int = 0):
    loader = getattr(m, f"{split}_dataloader")()
    loader.sampler.set_epoch(epoch)
    b = next(iter(loader))
    assert isinstance(b, Batch)
    return m.prepare_batch(b.images.clone(), b.seed, training), b


def test_split_sizes_and_types(tiny_data):
    m = dm(tiny_data, val_fraction=0.25)
    assert len(m.splits["train"][1]) == 240 and len(m.splits["val"][1]) == 80
    assert len(m.splits["test"][1]) == 100
    assert m.splits["train"][0].dtype == torch.uint8 and m.splits["train"][0].shape[1:] == (
        1,
        28,
        28,
    )
    n_batches = len(m.train_dataloader())
    assert n_batches == 8  # ceil(240 / 32)
    assert sum(len(b.labels) for b in m.train_dataloader()) == 240


def test_without_validation_the_whole_training_set_trains(tiny_data):
    m = dm(tiny_data, validation=False, val_fraction=0.25)
    assert "val" not in m.splits and len(m.splits["test"][1]) == 100
    assert sum(len(b.labels) for b in m.train_dataloader()) == 320  # nothing held out
    # every training image once, in the original set's order once sorted
    on = dm(tiny_data, val_fraction=0.25)
    images = torch.cat([on.splits["train"][0], on.splits["val"][0]])
    assert sorted(map(bytes, images.flatten(1).numpy())) == sorted(
        map(bytes, m.splits["train"][0].flatten(1).numpy())
    )
    assert m.val_dataloader() == []  # Lightning runs no validation loop for no loader


def test_split_is_stable_across_run_seeds_and_moves_with_split_seed(tiny_data):
    a, b = dm(tiny_data, seed=1), dm(tiny_data, seed=2)
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    c = dm(tiny_data, seed=1, split_seed=5)
    assert not torch.equal(a.splits["val"][0], c.splits["val"][0])
    # train and val are disjoint and together the whole training set
    assert len(a.splits["train"][1]) + len(a.splits["val"][1]) == 320


def test_run_seed_changes_shuffle_but_is_reproducible(tiny_data):
    a1, a2, b = dm(tiny_data, seed=1), dm(tiny_data, seed=1), dm(tiny_data, seed=2)
    la = [x.labels for x in a1.train_dataloader()]
    assert all(torch.equal(x, y.labels) for x, y in zip(la, a2.train_dataloader()))
    assert not all(torch.equal(x, y.labels) for x, y in zip(la, b.train_dataloader()))
    loader = a1.train_dataloader()
    loader.sampler.set_epoch(1)
    assert not torch.equal(next(iter(loader)).labels, la[0])  # reshuffled each epoch


def test_batches_are_indexed_where_the_data_lives():
    # On a GPU the splits sit on the device: the epoch's order is sent there once and no
    # batch crosses the bus. The meta device stands in for a GPU here.
    from cnnlab.data.batches import batch_loader

    images = torch.empty(10, 1, 4, 4, dtype=torch.uint8, device="meta")
    labels = torch.empty(10, dtype=torch.long, device="meta")
    loader = batch_loader(images, labels, batch_size=4, shuffle=True, seed=0)
    keys = list(loader.sampler)
    assert [len(idx) for _, idx in keys] == [4, 4, 2]
    assert all(idx.device.type == "meta" for _, idx in keys)
    batches = list(loader)
    assert all(b.images.device.type == "meta" and b.images.shape[1:] == (1, 4, 4) for b in batches)


def test_splits_move_to_the_training_device_even_when_set_up_before(tiny_data, monkeypatch):
    m = dm(tiny_data)  # set up with no trainer: host memory
    assert m.splits["train"][0].device.type == "cpu"
    monkeypatch.setattr(m, "_device", lambda: torch.device("meta"))  # a GPU's stand-in
    m.setup("fit")
    assert {t.device.type for pair in m.splits.values() for t in pair} == {"meta"}
    off = dm(tiny_data, on_device=False)
    monkeypatch.setattr(off, "_device", lambda: torch.device("meta"))
    off.setup("fit")
    assert off.splits["train"][0].device.type == "cpu"


def test_normalization_uses_configured_mean_and_std(tiny_data):
    m = dm(tiny_data, mean=0.5, std=0.25)
    x, raw = first_batch(m, "val", training=False)
    expected = (raw.images.float() / 255 - 0.5) / 0.25
    assert torch.allclose(x, expected)


def test_augmentation_changes_training_batches_only(tiny_data):
    m = dm(tiny_data, augmentation=BatchAugment("rotation", degrees=30))
    plain = dm(tiny_data)
    x_aug, _ = first_batch(m, "train", training=True)
    x_plain, _ = first_batch(plain, "train", training=True)
    assert not torch.allclose(x_aug, x_plain)
    for split in ("val", "test"):
        assert torch.equal(
            first_batch(m, split, training=False)[0], first_batch(plain, split, training=False)[0]
        )
    # each sample draws its own angle: per-sample differences are not all the same
    diffs = (x_aug - x_plain).abs().flatten(1).sum(1)
    assert diffs.std() > 0


def test_augmentation_reproducible_and_zero_magnitude_is_identity(tiny_data):
    aug = BatchAugment("affine", degrees=10, translate=0.1, scale=(0.9, 1.1), hflip=0.5)
    m = dm(tiny_data, augmentation=aug)
    assert torch.equal(first_batch(m, "train", True)[0], first_batch(m, "train", True)[0])
    assert not torch.equal(
        first_batch(m, "train", True, epoch=0)[0], first_batch(m, "train", True, epoch=1)[0]
    )
    x = torch.rand(4, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(BatchAugment("none")(x, gen), x)
    assert torch.equal(
        BatchAugment("zero", degrees=0, translate=0, scale=(1, 1), hflip=0)(x, gen), x
    )


def test_hflip_mirrors_exactly():
    x = torch.rand(3, 1, 28, 28)
    out = BatchAugment("hflip", hflip=1.0)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x.flip(-1), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"degrees": -5}, "degrees=-5"),
        ({"translate": 1.5}, "translate=1.5"),
        ({"scale": (1.2, 0.9)}, "scale="),
        ({"hflip": 2}, "hflip=2"),
    ],
)
def test_bad_augmentation_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchAugment("bad", **kwargs)


def test_missing_files_offline_give_the_clear_error(tmp_path):
    with pytest.raises(BadInput) as err:
        dm(tmp_path)
    msg = str(err.value)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert name in msg
    assert str((tmp_path / "MNIST" / "raw").resolve()) in msg and "CNNLAB_DATA_DIR" in msg


def test_failed_download_gives_the_clear_error(tmp_path, monkeypatch):
    import torchvision

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    with pytest.raises(BadInput, match="download failed.*unreachable"):
        dm(tmp_path, download=True)


def test_truncated_file_is_named(tmp_path):
    make_dataset(tmp_path, n_train=50, n_test=20)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte is corrupt or truncated"):
        dm(tmp_path)


def test_files_read_once_per_process_are_read_again_when_they_change(tmp_path):
    from cnnlab.run.provenance import data_checksums

    make_dataset(tmp_path, n_train=50, n_test=20, seed=0)
    first, again = dm(tmp_path), dm(tmp_path)
    assert torch.equal(first.splits["train"][0], again.splits["train"][0])
    first.splits["test"][0].zero_()  # one run's tensors are its own, not the cached read
    assert again.splits["test"][0].any()
    md5s = data_checksums(first.data_files())
    make_dataset(tmp_path, n_train=50, n_test=20, seed=1)  # new content (new mtime)
    changed = dm(tmp_path)
    assert not torch.equal(changed.splits["train"][0], again.splits["train"][0])
    assert data_checksums(changed.data_files()) != md5s


def test_fashion_mnist_through_the_same_code_from_gz_files(tmp_path):
    make_dataset(tmp_path, "FashionMNIST", n_train=60, n_test=20)
    raw = tmp_path / "FashionMNIST" / "raw"
    for f in list(raw.iterdir()):  # Debian's dataset-fashion-mnist ships only .gz files
        with open(f, "rb") as src, gzip.open(f"{f}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        f.unlink()
    m = dm(tmp_path, name="fashion_mnist", val_fraction=0.5)
    assert len(m.splits["train"][1]) == 30 and len(m.splits["test"][1]) == 20


def test_unknown_dataset_is_rejected(tmp_path):
    with pytest.raises(ArgumentError, match="name='cifar'.*fashion_mnist"):
        MNISTDataModule(name="cifar", root=str(tmp_path))


def test_offline_the_error_is_whole_and_leaves_no_empty_data_dir(tmp_path, monkeypatch):
    import torchvision

    # no network: every mirror refuses (torchvision's error then spans several lines)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    root = tmp_path / "nx1" / "nx2" / "data"  # every folder made for it goes
    with pytest.raises(BadInput) as caught:
        MNISTDataModule(root=str(root)).ensure_files()
    message = str(caught.value)
    assert "\n" not in message
    assert str(root / "MNIST" / "raw") in message and "CNNLAB_DATA_DIR" in message
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        assert name in message
    assert "the download failed (Error downloading" in message and message.endswith(").")
    assert list(tmp_path.iterdir()) == []


def test_the_evaluation_batch_size_changes_no_prediction(tiny_data):
    """``data.eval_batch_size`` is a speed setting (128 on a CPU is ~2x faster per image
    than 2000): the predictions of every test image are the same at any size."""
    from cnnlab.nets import MyCNN

    torch.manual_seed(0)
    net = MyCNN(batchnorm=True, dropout=0.5).eval()
    logits, batches = {}, {}
    for size in (7, 50, 2000):
        m = MNISTDataModule(root=str(tiny_data), download=False, eval_batch_size=size)
        m.setup()
        loader = list(m.test_dataloader())
        batches[size] = len(loader)
        with torch.no_grad():
            logits[size] = torch.cat(
                [net(m.prepare_batch(b.images, b.seed, training=False)) for b in loader]
            )
    whole = logits.pop(2000)  # the 100 test images in one batch
    assert batches == {7: 15, 50: 2, 2000: 1}
    for size, out in logits.items():
        assert torch.equal(out.argmax(1), whole.argmax(1)), size
        assert torch.allclose(out, whole, atol=1e-5), size
