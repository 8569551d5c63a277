"""Every experiment config composes and resolves; study sweeps declare arms × seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from cnnlab.cli.train import CONF_DIR
from cnnlab.config.schema import settings

EXPERIMENTS = sorted(
    str(p.relative_to(Path(CONF_DIR) / "experiment").with_suffix(""))
    for p in (Path(CONF_DIR) / "experiment").rglob("*.yaml")
    if not p.name.startswith("_")
)
STUDIES = [e for e in EXPERIMENTS if e.startswith("ablation/")]


def composed(overrides):
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train", overrides=[*overrides, "paths.output_dir=/tmp/x"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    hydra_node = OmegaConf.to_container(cfg.hydra)
    with open_dict(cfg):
        del cfg["hydra"]
    resolved = OmegaConf.to_container(cfg, resolve=True)  # raises on a broken interpolation
    resolved["hydra"] = hydra_node
    return cfg, resolved


def test_the_published_studies_are_all_there():
    assert {"baseline", "keras_seed004", "pretrain_fashion"} <= set(EXPERIMENTS)
    assert set(STUDIES) == {
        f"ablation/{s}"
        for s in ("dropout", "batchnorm", "augmentation", "transfer", "full", "activation")
    }


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_resolves_and_validates(name):
    cfg, resolved = composed([f"experiment={name}"])
    settings(cfg)  # the top-level values are in range; the objects check theirs when built
    assert resolved["group"] and resolved["job_type"]


@pytest.mark.parametrize("name", STUDIES)
def test_each_study_sweeps_arms_times_seeds(name):
    cfg, resolved = composed([f"experiment={name}"])
    params = resolved["hydra"]["sweeper"]["params"]
    # three seeds; five where an arm's outcome varies more from seed to seed (activation)
    assert params.pop("seed") in ("1,2,3", "1,2,3,4,5")
    assert params, "a study sweeps at least one arm key"
    ref = resolved["study_reference"]
    ref_keys = {part.split("=")[0] for part in ref.split(", ")}
    assert ref_keys == set(params), "the reference names one value of every arm key"
    for part in ref.split(", "):
        key, value = part.split("=")
        assert value in params[key].split(","), f"{part} is not one of the arms"
    assert resolved["group"].startswith("ablation-")
    assert any("=" in t for t in resolved["tags"]), "arm values are tags"


@pytest.mark.parametrize(
    "arm", ["scratch", "fashion_frozen", "fashion_finetune", "imagenet_frozen", "imagenet_finetune"]
)
def test_transfer_arms_compose(arm):
    cfg, resolved = composed(["experiment=ablation/transfer", f"transfer_arm={arm}"])
    net = resolved["model"]["net"]["_target_"]
    assert ("ResNet18" in net) == arm.startswith("imagenet")
    assert resolved["model"]["freeze"] == ("backbone" if arm.endswith("frozen") else "none")
    assert resolved["skip_unavailable_weights"] == arm.startswith("imagenet")
    assert resolved["tags"][-1] == f"arm={arm}"


@pytest.mark.parametrize(
    "overrides",
    [
        ["hparams_search=optuna"],
        ["hydra/launcher=local_parallel"],
        ["hydra/launcher=slurm"],
        ["trainer=ddp"],
        ["trainer=cpu"],
        ["logger=many"],
        ["logger=tensorboard"],
        ["debug=fdr"],
        ["debug=overfit"],
        ["model/scheduler=cosine"],
        ["model/scheduler=none"],
    ],
)
def test_other_groups_compose(overrides):
    cfg, resolved = composed(overrides)
    if overrides == ["hparams_search=optuna"]:
        assert resolved["hydra"]["sweeper"]["direction"] == "maximize"
        assert resolved["optimized_metric"] == "val/acc_best"
    if overrides == ["model/scheduler=none"]:
        assert resolved["model"]["scheduler"] is None
