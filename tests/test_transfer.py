"""Transfer learning: resnet18 weights from a file, freezing, cnnlab checkpoints."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torchvision

from cnnlab.nets import MyCNN, ResNet18Transfer
from cnnlab.nets.transfer import freeze, init_from_checkpoint
from cnnlab.training.classifier import Classifier


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    torch.manual_seed(123)
    net = torchvision.models.resnet18(weights=None)  # stands in for ImageNet weights
    path = tmp_path_factory.mktemp("w") / "resnet18-test.pth"
    torch.save(net.state_dict(), path)
    return path, net.state_dict()


def test_resnet18_loads_weights_from_a_file(resnet_file):
    path, state = resnet_file
    net = ResNet18Transfer(num_classes=10, weights=str(path), input_size=32)
    assert torch.equal(net.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.backbone.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    assert net.backbone.fc.out_features == 10
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)  # grayscale repeated, resized


def test_freeze_backbone_leaves_only_the_head_trainable(resnet_file):
    path, _ = resnet_file
    model = Classifier(
        ResNet18Transfer(weights=str(path), input_size=32),
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        freeze="backbone",
    )
    trainable = [n for n, p in model.net.named_parameters() if p.requires_grad]
    assert trainable == ["backbone.fc.weight", "backbone.fc.bias"]
    opt = (
        model.configure_optimizers()["optimizer"]
        if isinstance(model.configure_optimizers(), dict)
        else model.configure_optimizers()
    )
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == 512 * 10 + 10


def test_bad_weights_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file, nor a torchvision weights name"):
        ResNet18Transfer(weights=str(tmp_path / "nope.pth"))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="corrupt"):
        ResNet18Transfer(weights=str(corrupt))
    other = tmp_path / "mycnn.pth"
    torch.save(MyCNN().state_dict(), other)
    with pytest.raises(ValueError, match="not a resnet18 state dict"):
        ResNet18Transfer(weights=str(other))


def test_imagenet_name_offline_says_how_to_get_the_weights(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_network(self, *a, **k):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", no_network)
    from cnnlab.errors import WeightsUnavailable

    with pytest.raises(WeightsUnavailable, match="IMAGENET1K_V1.*model.net.weights"):
        ResNet18Transfer(weights="IMAGENET1K_V1")


def test_init_from_checkpoint_with_new_head_and_architecture_check(tmp_path):
    src = MyCNN(num_classes=10)
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = MyCNN(num_classes=5)  # another number of classes: a fresh head
    skipped = init_from_checkpoint(dst, path)
    assert skipped == ["fc2.weight", "fc2.bias"]
    assert torch.equal(dst.conv1.weight, src.conv1.weight)
    freeze(dst, "backbone")
    assert [n for n, p in dst.named_parameters() if p.requires_grad] == ["fc2.weight", "fc2.bias"]
    with pytest.raises(ValueError, match="another architecture"):  # BadInput
        init_from_checkpoint(MyCNN(channels=(16, 32)), path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        init_from_checkpoint(MyCNN(), tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match="freeze='all'"):
        freeze(dst, "all")


def test_feature_cache_trains_the_head_like_the_full_forward_pass(cli_env, tmp_path):
    from conftest import FAST, cnnlab, results

    args = [*FAST, "model.freeze=backbone", "logger=none", "model.optimizer.lr=0.01"]
    runs = {}
    for enabled in ("true", "false"):
        out = tmp_path / f"cache_{enabled}"
        proc = cnnlab([*args, f"feature_cache={enabled}", f"hydra.run.dir={out}"], cli_env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert ("feature cache:" in proc.stdout) == (enabled == "true")
        runs[enabled] = results(out)
    cached, full = runs["true"], runs["false"]
    for a, b in zip(cached["history"], full["history"]):
        assert a["val/loss"] == pytest.approx(b["val/loss"], abs=1e-4)
        assert a["val/acc"] == pytest.approx(b["val/acc"], abs=1e-6)
    assert cached["metrics"]["test/acc"] == pytest.approx(full["metrics"]["test/acc"], abs=1e-6)
    head_a = torch.load(tmp_path / "cache_true" / "checkpoints" / "last.ckpt", weights_only=True)
    head_b = torch.load(tmp_path / "cache_false" / "checkpoints" / "last.ckpt", weights_only=True)
    assert torch.allclose(
        head_a["state_dict"]["net.fc2.weight"], head_b["state_dict"]["net.fc2.weight"], atol=1e-4
    )
    assert torch.equal(
        head_a["state_dict"]["net.conv1.weight"], head_b["state_dict"]["net.conv1.weight"]
    )


def test_feature_cache_is_not_used_when_the_backbone_sees_random_input():
    from cnnlab.data import BatchAugment, MNISTDataModule
    from cnnlab.training.feature_cache import cacheable

    model = Classifier(MyCNN(), optimizer=partial(torch.optim.Adam), freeze="backbone")
    plain = MNISTDataModule()
    assert cacheable(model, plain) is None
    assert "augmentation" in cacheable(
        model, MNISTDataModule(augmentation=BatchAugment("r", degrees=5))
    )
    assert "not frozen" in cacheable(
        Classifier(MyCNN(), optimizer=partial(torch.optim.Adam)), plain
    )
    dropped = Classifier(MyCNN(dropout=0.5), optimizer=partial(torch.optim.Adam), freeze="backbone")
    assert "dropout" in cacheable(dropped, plain)
