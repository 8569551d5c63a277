"""A checkpoint or run dir someone sends you is data: nothing in it is called or imported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import FAST, cnnlab, crafted_checkpoint, results

EVIL = {
    "a stdlib call": lambda m: {"_target_": "builtins.open", "_args_": [str(m), "w"]},
    "a cnnlab class with an argument that is itself a target": lambda m: {
        "_target_": "cnnlab.nets.MyCNN",
        "hidden": {"_target_": "builtins.open", "_args_": [str(m), "w"]},
    },
    "a partial": lambda m: {"_target_": "pathlib.Path.touch", "_partial_": True, "self": str(m)},
    "a module outside cnnlab's": lambda m: {"_target_": "os.path.join", "_args_": [str(m)]},
    "a cnnlab function that is not a class": lambda m: {
        "_target_": "cnnlab.results.write_json",
        "path": str(m),
        "data": {},
    },
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
    assert marker.exists()  # ...but with --trust it was built, as the flag says


@pytest.fixture(scope="module")
def honest_template(tiny_data, tmp_path_factory):
    """One honest run, trained once for the module; each test gets its own copy."""
    import os

    home = tmp_path_factory.mktemp("honest")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")},
        "CNNLAB_DATA_DIR": str(tiny_data),
        "CNNLAB_LOG_DIR": str(home / "logs"),
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(home),
        "HYDRA_FULL_ERROR": "0",
    }
    run = home / "logs" / "honest"
    proc = cnnlab([*FAST, "logger=none", "tags=[/some/path,b]", f"hydra.run.dir={run}"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return run


@pytest.fixture
def honest_run(honest_template, tmp_path):
    import shutil

    return Path(shutil.copytree(honest_template, tmp_path / "logs" / "honest", symlinks=True))


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


def refused_rerun(run: Path, added: list[str], out: Path, env: dict[str, str]) -> None:
    """``cnnlab-rerun`` of ``run`` with ``added`` saved after its own overrides is refused:
    one line that offers --trust, exit 2, no traceback, and no rerun dir made."""
    saved = run / ".hydra" / "overrides.yaml"
    saved.write_text(saved.read_text() + "".join(f"- {json.dumps(o)}\n" for o in added))
    proc = cnnlab([str(run), "--out", str(out)], env, tool="cnnlab-rerun", timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab-rerun:")]
    assert len(line) == 1 and "--trust" in line[0] and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize("kind", list(CRAFTED_OVERRIDES))
def test_cnnlab_rerun_refuses_crafted_saved_overrides(kind, honest_run, tmp_path, cli_env):
    marker = tmp_path / "marker"
    crafted = [o.format(m=marker) for o in CRAFTED_OVERRIDES[kind]]
    refused_rerun(honest_run, crafted, tmp_path / "rerun", cli_env)
    assert not marker.exists()


def test_a_saved_data_download_is_pinned_off(honest_run, tmp_path, cli_env):
    saved = honest_run / ".hydra" / "overrides.yaml"
    saved.write_text(
        saved.read_text() + f"- data.download=true\n- data.root={tmp_path}/elsewhere\n"
    )
    proc = cnnlab(
        [str(honest_run), "--out", str(tmp_path / "rerun")],
        cli_env,
        tool="cnnlab-rerun",
        timeout=300,
    )
    assert "data.download=false" in proc.stdout.replace("\n", " ")
    assert not (tmp_path / "elsewhere").exists()  # nothing downloaded into the file's folder


def test_an_honest_run_with_brackets_in_its_overrides_reruns_identically(
    honest_run, tmp_path, cli_env
):
    proc = cnnlab([str(honest_run), "--out", str(tmp_path / "rerun")], cli_env, tool="cnnlab-rerun")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "tags=[/some/path,b]" in proc.stdout and "MarkupError" not in proc.stderr
    assert json.loads((tmp_path / "rerun" / "rerun.json").read_text())["identical"]


def test_a_bad_saved_value_is_refused_in_the_trainers_one_line(honest_run, tmp_path, cli_env):
    """A value no object takes (not code: --trust is not the answer) is cnnlab-train's
    refusal, exit 2, and no second line saying the rerun 'did not start'."""
    saved = honest_run / ".hydra" / "overrides.yaml"
    saved.write_text(saved.read_text() + "- model.net.dropout=1.5\n")
    out = tmp_path / "rerun"
    proc = cnnlab([str(honest_run), "--out", str(out)], cli_env, tool="cnnlab-rerun")
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cnnlab")]
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(lines) == 1 and "model.net.dropout=1.5 is invalid" in lines[0], lines
    assert not out.exists()


def test_a_crafted_wandb_id_cannot_become_a_path(honest_run, cli_env):
    (honest_run / "wandb_id.txt").write_text("../../../escaped\n")
    record = results(honest_run)  # an unfinished run, which resume=auto continues
    (honest_run / "results.json").write_text(json.dumps({**record, "status": "interrupted"}))
    proc = cnnlab(
        [
            *FAST,
            "tags=[/some/path,b]",
            "resume=auto",
            "skip_completed=false",
            f"hydra.run.dir={honest_run}",
        ],
        cli_env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "logger.wandb.id='../../../escaped' is invalid" in proc.stderr
    assert results(honest_run) == {**record, "status": "interrupted"}  # its record is untouched


# --- a file's text is data: no resolver runs, names and folders stay in the run ---------


def _builds_marker(m: Path) -> str:
    """The interpolation of issue 23: OmegaConf's oc.create builds a call when read."""
    return (
        "${oc.create:{_target_: pathlib.Path.write_text, _args_: [{_target_: "
        f"pathlib.Path, _args_: ['{m}']}}, 'import os']}}}}"
    )


RESOLVERS = {
    "oc.create, the loud one": _builds_marker,
    "oc.create, the quiet one (resolves to 0)": lambda m: (
        "${oc.select:x,${oc.create:{_target_: pathlib.Path.touch, self: '" + str(m) + "'}}}"
    ),
    "a resolver named by a reference": lambda m: "${${name}:{_target_: pathlib.Path.touch}}",
    "the environment": lambda m: "${oc.env:HOME}",
}


@pytest.mark.parametrize("kind", list(RESOLVERS))
@pytest.mark.parametrize("tool", ["cnnlab-eval", "cnnlab-show"])
def test_a_checkpoint_config_that_calls_a_resolver_is_refused(kind, tool, tmp_path, cli_env):
    marker = tmp_path / "marker.pth"
    ckpt = crafted_checkpoint(
        tmp_path, {"_target_": "cnnlab.nets.MyCNN", "dropout": RESOLVERS[kind](marker)}
    )
    proc = cnnlab([str(ckpt)], cli_env, tool=tool, timeout=120)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"{tool}:")]
    assert len(line) == 1 and "model.net.dropout" in line[0] and "resolver" in line[0]
    assert "Traceback" not in proc.stderr and not marker.exists()
    assert not (tmp_path / "show").exists()  # cnnlab-show made nothing either


def test_a_reference_to_the_configs_own_keys_is_still_data(tmp_path, cli_env):
    """${a.b} is how configs share a value (num_classes: ${data.num_classes}): allowed,
    and the tree checked is the resolved one."""
    from cnnlab.config.targets import check_data

    resolved = check_data({"a": {"b": 3}, "c": "${a.b}", "d": "x${a.b}"}, "a test file")
    assert resolved == {"a": {"b": 3}, "c": 3, "d": "x3"}


def test_a_stored_pruner_that_calls_a_resolver_is_never_built(tmp_path):
    from cnnlab.errors import ConfigError
    from cnnlab.search.storage import make_pruner

    marker = tmp_path / "marker.pth"
    spec = {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": _builds_marker(marker)}
    with pytest.raises(ConfigError, match="resolver"):
        make_pruner(spec)
    assert not marker.exists()
    assert make_pruner({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 3})


CRAFTED_WRITES = {
    "a resolver in a value": lambda m: ["model.net.dropout=" + _builds_marker(m)],
    "a checkpoint name that climbs": lambda m: [f"callbacks.model_checkpoint.filename=../../{m}"],
    "a logger name that climbs": lambda m: ["logger=csv", f"logger.csv.name=../../{m}"],
    "a name that is a reference to a path": lambda m: [
        "callbacks.model_checkpoint.filename=${data.root}"
    ],
    "a new callback writing elsewhere": lambda m: [
        f"+callbacks.extra={{_target_:lightning.pytorch.callbacks.ModelCheckpoint,dirpath:{m}}}"
    ],
    "a config group outside conf/": lambda m: [f"experiment=../../{m}"],
}


@pytest.mark.parametrize("kind", list(CRAFTED_WRITES))
def test_cnnlab_rerun_keeps_a_saved_run_inside_its_dir(kind, honest_run, tmp_path, cli_env):
    marker = tmp_path / "escaped" / "marker"
    refused_rerun(honest_run, CRAFTED_WRITES[kind](marker), tmp_path / "rerun", cli_env)
    assert not (tmp_path / "escaped").exists()


def test_a_huge_overrides_file_is_one_line_not_a_hang(honest_run, tmp_path, cli_env):
    saved = honest_run / ".hydra" / "overrides.yaml"
    saved.write_text(saved.read_text() + "- tags=[" + "a," * (1 << 20) + "a]\n")  # 2 MiB
    proc = cnnlab(
        [str(honest_run), "--out", str(tmp_path / "rerun")],
        cli_env,
        tool="cnnlab-rerun",
        timeout=60,
    )
    assert proc.returncode == 2 and "MiB" in proc.stderr and "Traceback" not in proc.stderr


def test_a_record_symlinked_out_of_the_run_is_not_read(honest_run, tmp_path, cli_env):
    secret = tmp_path / "secret.json"
    secret.write_text('{"status": "completed", "metrics": {"password": 1234}}')
    (honest_run / "results.json").unlink()
    (honest_run / "results.json").symlink_to(secret)
    proc = cnnlab(
        [str(honest_run), "--out", str(tmp_path / "rerun")],
        cli_env,
        tool="cnnlab-rerun",
        timeout=60,
    )
    assert proc.returncode == 2 and "outside" in proc.stderr
    assert "1234" not in proc.stdout + proc.stderr and not (tmp_path / "rerun").exists()


def test_cnnlab_show_does_not_write_through_a_planted_symlink(tmp_path, cli_env):
    from cnnlab.nets import MyCNN  # noqa: F401  (the crafted checkpoint is an honest MyCNN)

    ckpt = crafted_checkpoint(tmp_path, {"_target_": "cnnlab.nets.MyCNN"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "show").symlink_to(elsewhere)
    proc = cnnlab([str(ckpt)], cli_env, tool="cnnlab-show", timeout=120)
    assert proc.returncode == 2 and "symlink" in proc.stderr, proc.stderr[-2000:]
    assert list(elsewhere.iterdir()) == []


def test_a_file_written_over_a_planted_symlink_replaces_the_link(tmp_path):
    from cnnlab.files import write_bytes

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "comparison.md").symlink_to(victim)
    write_bytes(tmp_path / "comparison.md", "table")
    assert victim.read_text() == "keep me"
    assert (tmp_path / "comparison.md").read_text() == "table"
    assert not (tmp_path / "comparison.md").is_symlink()


def _tiny_study(root: Path) -> Path:
    """Two finished runs of a study, as compare reads them (records only, no training)."""
    for seed, acc in ((1, 0.91), (2, 0.92)):
        run = root / "study" / f"seed={seed}"
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n")
        (run / "results.json").write_text(
            json.dumps(
                {
                    "status": "completed",
                    "metrics": {"test/acc": acc, "test/loss": 0.3},
                    "history": [],
                    "epochs": 1,
                }
            )
        )
    return root / "study"


def test_cnnlab_compare_reads_nothing_outside_the_study_and_writes_through_no_link(
    tmp_path, cli_env
):
    study = _tiny_study(tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text('{"status": "failed", "error": "the password is 1234"}')
    outside = study / "seed=3"
    (outside / ".hydra").mkdir(parents=True)
    (outside / ".hydra" / "overrides.yaml").write_text("- seed=3\n")
    (outside / "results.json").symlink_to(secret)
    victim = tmp_path / "victim.md"
    victim.write_text("keep me")
    (study / "comparison.md").symlink_to(victim)
    proc = cnnlab([str(study)], cli_env, tool="cnnlab-compare", timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1234" not in proc.stdout + proc.stderr
    assert "outside" in proc.stderr  # the run is reported, as not read
    assert victim.read_text() == "keep me" and not (study / "comparison.md").is_symlink()
    # a saved config whose value would run code if it were resolved while reading: text
    (study / "seed=1" / ".hydra" / "config.yaml").write_text(
        "study_reference: " + json.dumps(_builds_marker(tmp_path / "marker.pth")) + "\n"
    )
    proc = cnnlab([str(study)], cli_env, tool="cnnlab-compare", timeout=120)
    assert proc.returncode == 2 and "is not one of the arms" in proc.stderr
    assert not (tmp_path / "marker.pth").exists()


def test_cnnlab_compare_refuses_an_output_folder_that_is_a_link(tmp_path, cli_env):
    study = _tiny_study(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").symlink_to(tmp_path / "elsewhere")
    proc = cnnlab(
        [str(study), "--out", str(tmp_path / "out")], cli_env, tool="cnnlab-compare", timeout=120
    )
    assert proc.returncode == 2 and "symlink" in proc.stderr
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_typo_on_the_rerun_command_line_is_blamed_on_it(honest_run, tmp_path, capsys):
    """The user's own override that does not compose is named as theirs, not as the run
    dir's saved file (which composes)."""
    from cnnlab.cli.rerun import main

    out = tmp_path / "rerun"
    assert main([str(honest_run), "model.net.dropuot=0.5", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the overrides given on the command line (model.net.dropuot=0.5) do not compose" in err
    assert "did you mean model.net.dropout?" in err
    assert ".hydra/overrides.yaml" not in err and not out.exists()
