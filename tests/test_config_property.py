"""Every leaf of the config, set to a value of the wrong type and to a value out of range, is
refused before any data is read: exit 2, one line naming the key, no traceback.

The leaves come from the composed default config and from each option of the groups that
bring their own keys (nets, optimizers, schedulers, augmentations). The values come from
each leaf's own type; the few (key, value) pairs that are legitimately valid are listed in
ACCEPTED with the reason. The runs are in-process, with train=false and test=false: a
value that is wrongly accepted shows as a run that completes.
"""

from __future__ import annotations

import time

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from cnnlab.cli.train import CONF_DIR
from conftest import train_inprocess

BASE = [
    "trainer.accelerator=cpu",
    "callbacks.progress_bar=null",
    "train=false",
    "test=false",
    "data.batch_size=32",
    "data.eval_batch_size=64",
]
# the options with keys of their own, on top of the defaults
OPTIONS = [
    "model/net=keras_cnn",
    "model/net=lenet5",
    "model/net=convnet",
    "model/net=resnet18",
    "model/net=convnet_deep",
    "model/net=convnet_fixed",
    "model/optimizer=sgd",
    "model/scheduler=cosine",
    "data/augmentation=affine",
]
SKIP_PREFIXES = ("hydra.", "paths.")  # Hydra's own config; where a run writes (tested apart)

WRONG_TYPE = {
    bool: "maybe",
    int: "abc",
    float: "abc",
    str: "[1,2]",
    list: "abc",
    type(None): "[1,2]",
}
OUT_OF_RANGE = {int: "-7", float: "-7.5", str: "no_such_value", list: "[]"}

# (key, value) -> why cnnlab accepts it (every other generated pair must be refused). Not
# generated: hydra.* (Hydra's own config) and paths.* (where a run writes).
ACCEPTED = {
    **{
        (k, "no_such_value"): "a free name"
        for k in (
            "job_type",
            "run_name",
            "group",
            "arm",
            "study_reference",
            "data.augmentation.name",
            "logger.wandb.project",
            "logger.wandb.name",
            "logger.wandb.group",
            "logger.wandb.job_type",
            "logger.wandb.entity",
            "callbacks.model_checkpoint.filename",
            "trainer.default_root_dir",
        )
    },
    ("tags", "[]"): "no tags",
    ("logger.wandb.tags", "[]"): "no tags",
    ("data.mean", "-7.5"): "any mean can be subtracted",
    ("search", "[1,2]"): "the Optuna sweeper's own value, never typed by users",
    ("data.root", "no_such_value"): "refused too, as missing data (exit 2, another test)",
    ("logger.wandb.save_dir", "no_such_value"): "any folder (a relative one is made)",
    ("callbacks.model_checkpoint.dirpath", "no_such_value"): "any folder for the best one",
    ("callbacks.model_summary.save_to", "no_such_value"): "any file name for the table",
    ("model.net.layers", "[]"): "no hidden layers: a linear classifier on the pixels",
    ("model.compile_backend", "no_such_value"): "unused with model.compile=none; checked "
    "when compile is on (listing backends imports torch._dynamo, ~2.5 s): test_compile",
}


def leaves(overrides: list[str]) -> dict[str, object]:
    """Every leaf key of the composed config with its resolved value."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "paths.output_dir=/tmp/x", "run_name=x"])
    out: dict[str, object] = {}

    def walk(node, prefix):
        for k in node:
            key = f"{prefix}{k}"
            if str(k).startswith("_") or key.startswith(SKIP_PREFIXES):
                continue
            child = node._get_node(k)
            if OmegaConf.is_dict(child) and not child._is_none():
                walk(child, key + ".")
            else:
                out[key] = OmegaConf.select(cfg, key)  # resolved: ${seed} counts as an int

    walk(cfg, "")
    return {k: (list(v) if OmegaConf.is_list(v) else v) for k, v in out.items()}


def cases() -> list[tuple[list[str], str, str]]:
    seen: set[str] = set()
    found = []
    for option in [None, *OPTIONS]:
        extra = [option] if option else []
        for key, value in leaves(extra).items():
            if key in seen or key.endswith("input_size") and option is None:
                continue
            seen.add(key)
            kind = type(value) if type(value) in WRONG_TYPE else str
            for bad in (WRONG_TYPE[kind], OUT_OF_RANGE.get(kind)):
                if bad is not None and (key, bad) not in ACCEPTED:
                    found.append((extra, key, bad))
    return found


CASES = cases()


@pytest.mark.parametrize(
    "extra, key, value", CASES, ids=[f"{k}={v}" + (f"[{e[0]}]" if e else "") for e, k, v in CASES]
)
def test_a_bad_value_of_any_leaf_is_one_line_naming_the_key(
    extra, key, value, tmp_path, tiny_data, monkeypatch, capsys
):
    logger = [] if key.startswith("logger.") else ["logger=none"]
    monkeypatch.chdir(tmp_path)  # a relative path among the values lands here, not in the repo
    t0 = time.perf_counter()
    code, out, err = train_inprocess(
        [*BASE, *logger, *extra, f"{key}={value}"],
        monkeypatch,
        capsys,
        tiny_data,
        tmp_path / "logs",
    )
    elapsed = time.perf_counter() - t0
    lines = [line for line in err.splitlines() if line.startswith("cnnlab:")]
    assert code == 2, f"{key}={value} was accepted (exit {code}): {err[-1500:]}"
    assert "Traceback" not in err + out
    assert len(lines) == 1 and key.split(".")[-1] in lines[0], err[-1500:]
    assert elapsed < 30


def test_the_property_test_covers_the_config():
    keys = {k for _, k, _ in CASES}
    assert len(keys) >= 100 and len(CASES) >= 170  # noted in the closing note
    for expected in (
        "seed",
        "data.batch_size",
        "model.net.dropout",
        "model.optimizer.lr",
        "model.scheduler.patience",
        "trainer.max_epochs",
        "callbacks.early_stopping.patience",
        "logger.wandb.mode",
        "model.optimizer.momentum",
        "data.augmentation.degrees",
    ):
        assert expected in keys
