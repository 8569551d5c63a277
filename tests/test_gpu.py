"""The GPU path: data held on the device, per-sample augmentation with a CUDA generator,
a whole run on the GPU, and deterministic reruns. Skipped, with the reason, without CUDA."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import cnnlab, results

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
]

GPU = [
    "trainer=gpu",
    "debug=limit",
    "callbacks.progress_bar=null",
    "logger=none",
    "data.batch_size=32",
    "data.eval_batch_size=64",
]


def test_the_datamodule_keeps_its_splits_and_batch_order_on_the_gpu(tiny_data):
    import lightning as L

    from cnnlab.data import MNISTDataModule

    dm = MNISTDataModule(root=str(tiny_data), download=False, batch_size=32)
    dm.trainer = L.Trainer(accelerator="gpu", devices=1, logger=False)
    dm.setup("fit")
    assert all(t.is_cuda for pair in dm.splits.values() for t in pair)
    seed, idx = next(iter(dm.train_dataloader().sampler))
    assert idx.is_cuda  # the epoch's order went to the device once, not batch by batch


def test_augmentation_with_a_cuda_generator_is_per_sample_and_seeded():
    from cnnlab.data import BatchAugment

    aug = BatchAugment("affine", degrees=10, translate=0.1, scale=(0.9, 1.1))
    x = torch.rand(8, 1, 28, 28, device="cuda").expand(8, 1, 28, 28).contiguous()
    x[:] = x[0]
    a = aug(x, torch.Generator(device="cuda").manual_seed(3))
    b = aug(x, torch.Generator(device="cuda").manual_seed(3))
    assert torch.equal(a, b) and a.is_cuda
    assert not torch.equal(a[0], a[1])  # one image, eight draws


@pytest.mark.parametrize("deterministic", ["warn", "true"])
def test_a_gpu_run_reruns_bit_identically(deterministic, cli_env, tmp_path):
    run = tmp_path / "logs" / "gpu"
    args = [
        *GPU,
        "data/augmentation=affine",
        "model.net.dropout=0.3",
        f"trainer.deterministic={deterministic}",
        f"hydra.run.dir={run}",
    ]
    proc = cnnlab(args, cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = results(run)
    assert res["status"] == "completed" and res["provenance"]["device"]["gpu"]
    proc = cnnlab([str(run), "--out", str(tmp_path / "rerun")], cli_env, tool="cnnlab-rerun")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert json.loads((tmp_path / "rerun" / "rerun.json").read_text())["identical"]
