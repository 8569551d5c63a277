"""A checkpoint or run dir someone sends you is data: nothing in it is called or imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import FAST, cnnlab, results


def crafted_checkpoint(tmp_path: Path, net: dict) -> Path:
    """A checkpoint whose stored config builds ``net`` (honest weights of a MyCNN)."""
    from cnnlab.nets import MyCNN

    config = {"data": {"_target_": "cnnlab.data.MNISTDataModule", "name": "mnist"},
              "model": {"_target_": "cnnlab.training.classifier.Classifier", "net": net,
                        "optimizer": {"_target_": "torch.optim.Adam", "_partial_": True}}}
    path = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in MyCNN().state_dict().items()},
                "cnnlab": {"config": config}}, path)
    return path


EVIL = {
    "a stdlib call": lambda m: {"_target_": "builtins.open", "_args_": [str(m), "w"]},
    "a cnnlab class with an argument that is itself a target": lambda m: {
        "_target_": "cnnlab.nets.MyCNN", "hidden": {"_target_": "builtins.open",
                                                    "_args_": [str(m), "w"]}},
    "a partial": lambda m: {"_target_": "pathlib.Path.touch", "_partial_": True,
                            "self": str(m)},
    "a module outside cnnlab's": lambda m: {"_target_": "os.path.join", "_args_": [str(m)]},
    "a cnnlab function that is not a class": lambda m: {
        "_target_": "cnnlab.run.results.write_json", "path": str(m), "data": {}},
}


@pytest.mark.parametrize("kind", list(EVIL))
def test_cnnlab_eval_refuses_a_checkpoint_whose_config_names_other_code(kind, tmp_path, cli_env):
    marker = tmp_path / "marker"
    ckpt = crafted_checkpoint(tmp_path, EVIL[kind](marker))
    proc = cnnlab([str(ckpt)], cli_env, tool="cnnlab-eval", timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab-eval:")]
    assert len(line) == 1 and "model.net" in line[0] and "_target_" in line[0]
    assert "--trust" in line[0] and "Traceback" not in proc.stderr
    assert not marker.exists(), "the crafted target was called"


def test_trust_is_the_users_own_opt_out(tmp_path, cli_env):
    marker = tmp_path / "marker"
    ckpt = crafted_checkpoint(tmp_path, EVIL["a stdlib call"](marker))
    proc = cnnlab([str(ckpt), "--trust"], cli_env, tool="cnnlab-eval", timeout=120)
    assert proc.returncode == 2  # the "net" it built is no net...
    assert marker.exists()       # ...but with --trust it was built, as the flag says


@pytest.fixture
def honest_run(cli_env, tmp_path):
    run = tmp_path / "logs" / "honest"
    proc = cnnlab([*FAST, "logger=none", "tags=[/some/path,b]", f"hydra.run.dir={run}"],
                  cli_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


CRAFTED_OVERRIDES = {
    "a net target": ["model.net._target_=builtins.open", "+model.net._args_=[{m},w]"],
    "a replaced net": ["~model.net", "+model.net={{_target_:builtins.open,_args_:[{m},w]}}"],
    "where it writes": ["hydra.run.dir={m}"],
    "a checkpoint dir": ["callbacks.model_checkpoint.dirpath={m}"],
    "the paths": ["paths.log_dir={m}"],
    "the summary file": ["callbacks.model_summary.save_to={m}"],
    "a study to report to": ["++search={{storage:sqlite:///{m},study_name:x,trial_number:0}}"],
    "a package override": ["+launcher@hydra.launcher=basic"],
}


@pytest.mark.parametrize("kind", list(CRAFTED_OVERRIDES))
def test_cnnlab_rerun_refuses_crafted_saved_overrides(kind, honest_run, tmp_path, cli_env):
    marker = tmp_path / "marker"
    saved = honest_run / ".hydra" / "overrides.yaml"
    extra = "".join(f"- {o.format(m=marker)}\n" for o in CRAFTED_OVERRIDES[kind])
    saved.write_text(saved.read_text() + extra)
    proc = cnnlab([str(honest_run), "--out", str(tmp_path / "rerun")], cli_env,
                  tool="cnnlab-rerun", timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab-rerun:")]
    assert len(line) == 1 and "--trust" in line[0] and "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "rerun").exists()


def test_a_saved_data_download_is_pinned_off(honest_run, tmp_path, cli_env):
    saved = honest_run / ".hydra" / "overrides.yaml"
    saved.write_text(saved.read_text() + f"- data.download=true\n- data.root={tmp_path}/elsewhere\n")
    proc = cnnlab([str(honest_run), "--out", str(tmp_path / "rerun")], cli_env,
                  tool="cnnlab-rerun", timeout=300)
    assert "data.download=false" in proc.stdout.replace("\n", " ")
    assert not (tmp_path / "elsewhere").exists()  # nothing downloaded into the file's folder


def test_an_honest_run_with_brackets_in_its_overrides_reruns_identically(honest_run, tmp_path,
                                                                       cli_env):
    proc = cnnlab([str(honest_run), "--out", str(tmp_path / "rerun")], cli_env,
                  tool="cnnlab-rerun")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "tags=[/some/path,b]" in proc.stdout and "MarkupError" not in proc.stderr
    assert json.loads((tmp_path / "rerun" / "rerun.json").read_text())["identical"]


def test_a_crafted_wandb_id_cannot_become_a_path(honest_run, cli_env):
    (honest_run / "wandb_id.txt").write_text("../../../escaped\n")
    proc = cnnlab([*FAST, "tags=[/some/path,b]", "resume=auto", "skip_completed=false",
                   f"hydra.run.dir={honest_run}"], cli_env, timeout=120)
    assert proc.returncode == 2
    assert "logger.wandb.id='../../../escaped' is invalid" in proc.stderr
    assert results(honest_run)["status"] == "completed"  # its record is untouched
