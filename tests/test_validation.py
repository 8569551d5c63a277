"""Bad input fails at once: one clear line naming the key, exit 2, no run claiming success."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import torch

from conftest import FAST, REPO, cnnlab, results, run_dirs, train_inprocess


def write_bad_files(tmp_path):
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x00garbage")
    other_arch = tmp_path / "keras.ckpt"
    from cnnlab.nets import KerasCNN

    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in KerasCNN().state_dict().items()}}, other_arch
    )
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    return {
        "corrupt": corrupt,
        "empty": empty,
        "other_arch": other_arch,
        "missing": tmp_path / "missing.ckpt",
    }


# (overrides, expected exit code, text the one-line message must contain)
CASES = [
    (["model.net.dropout=1.5"], 2, "model.net.dropout=1.5 is invalid: a probability in [0, 1)"),
    (["model.net.dropout=-0.1"], 2, "model.net.dropout=-0.1"),
    (["model.optimizer.lr=0"], 2, "model.optimizer.lr=0 is invalid: a learning rate > 0"),
    (["model.optimizer.lr=-1e-3"], 2, "model.optimizer.lr=-0.001"),
    (["data.batch_size=0"], 2, "data.batch_size=0 is invalid: an integer >= 1"),
    (
        ["data.val_fraction=1.0"],
        2,
        "data.val_fraction=1.0 is invalid: a fraction strictly between 0 and 1",
    ),
    (["data.val_fraction=0"], 2, "data.val_fraction=0"),
    (
        ["data/augmentation=rotation", "data.augmentation.degrees=-10"],
        2,
        "data.augmentation.degrees=-10 is invalid: rotation degrees in [0, 180]",
    ),
    (["data.augmentation.hflip=1.5"], 2, "data.augmentation.hflip=1.5"),
    (["data.augmentation.translate=2"], 2, "data.augmentation.translate=2"),
    (["trainer.max_epochs=0"], 2, "trainer.max_epochs=0 is invalid: an integer >= 1"),
    (
        ["data.name=cifar10"],
        2,
        "data.name='cifar10' is invalid: must be 'mnist' or 'fashion_mnist'",
    ),
    (
        ["model.freeze=everything"],
        2,
        "model.freeze='everything' is invalid: must be 'none' or 'backbone'",
    ),
    (["resume=maybe"], 2, "resume='maybe' is invalid: one of ['never', 'auto']"),
    (["seed=-3"], 2, "seed=-3 is invalid"),
    (
        ["model/net=convnet_seed001"],
        2,
        "model.net.input_size=[1, 39, 31] is invalid: the net's layers are sized for this input",
    ),
    (
        ["trainer.accelerator=gpu"]
        if not torch.cuda.is_available()
        else ["trainer.accelerator=tpu"],
        2,
        "trainer.accelerator=",
    ),
    (["model.scheduler.factor=1.5"], 2, "model.scheduler.factor=1.5"),
    (["torch_threads=0"], 2, "torch_threads=0"),
    (["torch_threads=100000"], 2, "torch_threads=100000 is invalid"),  # torch segfaulted
    (["cpu_malloc.mmap_threshold_mb=4096"], 2, "cpu_malloc.mmap_threshold_mb=4096 is invalid"),
    (["+cpu_malloc.arena=2"], 2, "arena"),
    (["model.init_from={missing}"], 2, "model.init_from="),
    (["model.init_from={corrupt}"], 2, "is invalid: corrupt or not a torch checkpoint"),
    (["model.init_from={empty}"], 2, "is invalid: corrupt or not a torch checkpoint (an empty"),
    (["model.init_from={other_arch}"], 2, "holds another architecture than MyCNN"),
    (["ckpt_path={missing}"], 2, "ckpt_path="),
    (["ckpt_path={corrupt}"], 2, "/corrupt.ckpt' is invalid: corrupt or not a torch checkpo"),
    (
        ["model/net=resnet18", "model.net.weights=/nowhere/resnet18.pth"],
        2,
        "model.net.weights='/nowhere/resnet18.pth' is invalid: no such file, nor a torchvision",
    ),
    (
        ["model/net=convnet", "model.net.layers=[{type: conv, channels: 8, kernel: 40}]"],
        2,
        "model.net.layers[0]",
    ),
    (
        ["model/optimizer=sgd", "model.optimizer.momentum=0"],
        2,
        "Nesterov momentum requires a momentum",
    ),
    (["model/optimizer=sgd", "model.optimizer.lr=1e12"], 1, "training loss became"),
    # values only read at the end of an epoch, a trainer value Lightning would only trip on
    # later, a non-numeric data value, a nonsense trainer value: all refused before any data
    (["model.scheduler.patience=abc"], 2, "model.scheduler.patience='abc' is invalid"),
    (
        ["model/scheduler=cosine", "model.scheduler.T_max=0"],
        2,
        "model.scheduler.T_max=0 is invalid",
    ),
    (["trainer.precision=17"], 2, "trainer.precision=17 is invalid"),
    (["data.mean=abc"], 2, "data.mean='abc' is invalid"),
    (["trainer.log_every_n_steps=-5"], 2, "trainer.log_every_n_steps=-5 is invalid"),
    (["++trainer.val_check_interval=0"], 2, "trainer.val_check_interval=0 is invalid"),
    (["++trainer.accumulate_grad_batches=0"], 2, "trainer.accumulate_grad_batches=0 is invalid"),
    (["trainer.limit_train_batches=1.5"], 2, "trainer.limit_train_batches=1.5 is invalid: null,"),
    (["+trainer.max_epoch=3"], 2, "trainer.max_epoch=3 is invalid: not an argument of Lightning"),
    (["seed=abc"], 2, "seed='abc' is invalid"),
    (["sed=3"], 2, "sed"),
    # found by a probe to fail late (after the data was read) or to do the wrong thing
    (
        ["data.val_fraction=0.9999"],  # 320 tiny training images: the split rounds to all
        2,
        "data.val_fraction=0.9999 is invalid: leaves an empty split of the 320",
    ),
    (["model.net.num_classes=3"], 2, "model.net.num_classes=3 is invalid: data.num_classes (10)"),
    (["model/net=lenet5", "model.net.num_classes=20"], 2, "model.net.num_classes=20 is invalid"),
    (["model.num_classes=5"], 2, "model.num_classes=5 is invalid: data.num_classes (10)"),
    (
        ["++trainer.limit_val_batches=0"],
        2,
        "monitors val/acc, which trainer.limit_val_batches=0 never computes",
    ),
    (["trainer.devices=2"], 2, "trainer.devices=2 is invalid: 1, or with trainer=ddp more"),
    (
        ["callbacks.model_checkpoint.filename=a/../../../x"],
        2,
        "callbacks.model_checkpoint.filename='a/../../../x' is invalid: a name inside",
    ),
    (
        ["data.drop_last=true", "data.batch_size=1000"],
        2,
        "data.batch_size=1000 is invalid: at most the 256 training images",
    ),
    (["trainer.limit_train_batches=0"], 2, "trainer.limit_train_batches=0 is invalid"),
]


@pytest.mark.parametrize(
    "overrides, code, message", CASES, ids=[" ".join(c[0])[:60] for c in CASES]
)
def test_bad_input_is_refused_with_one_clear_line(
    overrides, code, message, tmp_path, tiny_data, monkeypatch, capsys
):
    files = write_bad_files(tmp_path)
    for name, path in files.items():
        overrides = [o.replace(f"{{{name}}}", str(path)) for o in overrides]
    logs = tmp_path / "logs"
    got, _, err = train_inprocess(
        [*FAST, "logger=none", *overrides], monkeypatch, capsys, tiny_data, logs
    )
    assert got == code, err
    assert message in err, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("cnnlab:")]
    assert len(lines) == 1 and message in lines[0]
    if code == 2:  # refused before it started: no run dir is left behind
        assert not (logs / "runs").exists() or not any((logs / "runs").iterdir())
    for d in run_dirs(logs):  # a run that started and failed says so
        res = results(d)
        assert res["status"] == "failed" and message in res["error"]


def test_a_sweeps_refused_job_keeps_a_failed_record(tmp_path, tiny_data, monkeypatch, capsys):
    """A sweep's job dir is the sweep's record of that job: refused, it says why, and the
    sweep's other jobs run."""
    logs = tmp_path / "logs"
    got, _, err = train_inprocess(
        ["-m", *FAST, "logger=none", "model.net.dropout=0.0,1.5"],
        monkeypatch,
        capsys,
        tiny_data,
        logs,
    )
    assert got == 1, err
    records = {results(d)["status"]: results(d) for d in run_dirs(logs)}
    assert set(records) == {"completed", "failed"}
    assert "model.net.dropout=1.5 is invalid" in records["failed"]["error"]


def test_nan_loss_names_the_step_and_a_hint(tmp_path, tiny_data, monkeypatch, capsys):
    got, _, err = train_inprocess(
        [*FAST, "logger=none", "model/optimizer=sgd", "model.optimizer.lr=1e12"],
        monkeypatch,
        capsys,
        tiny_data,
        tmp_path / "logs",
    )
    assert got == 1
    (d,) = run_dirs(tmp_path / "logs")
    assert "global step" in results(d)["error"] and "model.optimizer.lr" in results(d)["error"]


def test_corrupt_data_file_is_named(tmp_path, tiny_data, monkeypatch, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    f = root / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes()[:-7])
    got, _, err = train_inprocess(
        [*FAST, "logger=none"], monkeypatch, capsys, root, tmp_path / "logs"
    )
    assert got == 2
    assert "train-labels-idx1-ubyte is corrupt or truncated" in err


def test_a_refused_relaunch_loses_nothing_already_written(tmp_path, tiny_data, monkeypatch, capsys):
    run = tmp_path / "logs" / "run"
    args = [*FAST, "logger=none", f"hydra.run.dir={run}"]
    assert train_inprocess(args, monkeypatch, capsys, tiny_data, tmp_path / "logs")[0] == 0
    before = (run / "results.json").read_text()
    ckpt = (run / "checkpoints" / "last.ckpt").read_bytes()
    got, _, err = train_inprocess(
        [*args, "resume=auto", "skip_completed=false", "model.net.dropout=1.5"],
        monkeypatch,
        capsys,
        tiny_data,
        tmp_path / "logs",
    )
    assert got == 2 and f"{run} holds a completed run" in err  # and is never rewritten
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == ckpt
    assert (run / "results.json").read_text() == before  # still the completed record


def test_cli_bad_value_exits_2_with_no_traceback(cli_env, tmp_path):
    proc = cnnlab(["model.net.dropout=1.5", *FAST], cli_env, timeout=120)
    assert proc.returncode == 2
    assert "model.net.dropout=1.5 is invalid" in proc.stderr and "Traceback" not in proc.stderr
    runs = tmp_path / "logs" / "runs"  # refused before it started: it leaves no run dir
    assert not runs.exists() or not any(runs.iterdir())


def test_cli_unknown_net_lists_the_valid_ones(cli_env):
    proc = cnnlab(["model/net=vgg99"], cli_env, timeout=120)
    assert proc.returncode == 2
    out = proc.stderr + proc.stdout
    assert "vgg99" in out and "mycnn" in out and "keras_cnn" in out and "Traceback" not in out


def test_the_trainers_checks_name_arguments_lightnings_trainer_has():
    """cnnlab's trainer rules and defaults sit on Lightning's own signature: after an
    upgrade that renames or drops an argument, this fails instead of checking nothing."""
    import inspect

    import lightning as L

    from cnnlab.training import trainer

    lightnings = inspect.signature(L.Trainer.__init__).parameters
    assert set(trainer.RULES) | set(trainer.DEFAULTS) <= set(lightnings)


def test_a_nested_objects_refusal_is_named_by_the_key_hydra_1_4_notes():
    """Hydra 1.4's instantiate raises a nested object's own error with its key in a note
    (``full_key: model.net``) where 1.3 wrapped it in an InstantiationException: either way
    the line names ``model.net.dropout``, not ``model.dropout``."""
    from omegaconf import OmegaConf

    from cnnlab.config.build import blame
    from cnnlab.errors import ArgumentError

    cfg = OmegaConf.create({"model": {"net": {"dropout": 1.5}}})
    refused = ArgumentError("dropout", 1.5, "a probability in [0, 1)")
    refused.add_note("full_key: model.net")
    err = blame(cfg, "model", lambda node: None, refused)
    assert str(err) == "model.net.dropout=1.5 is invalid: a probability in [0, 1)"
    unnoted = ArgumentError("freeze", "all", "one of none, backbone")
    assert str(blame(cfg, "model", lambda node: None, unnoted)).startswith("model.freeze='all'")


def refused(args, logs, tiny_data, monkeypatch, capsys, multirun: bool = False) -> str:
    """cnnlab-train with these args, which must be refused: exit 2, one line, no traceback;
    the line."""
    argv = ["-m"] * multirun + [*FAST, "logger=none", *args]
    got, _, err = train_inprocess(argv, monkeypatch, capsys, tiny_data, logs)
    assert got == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_a_run_name_climbing_out_of_the_log_dir_leaves_nothing_outside_it(
    tmp_path, tiny_data, monkeypatch, capsys
):
    logs = tmp_path / "a" / "b" / "logs"
    err = refused(["run_name=x/../../../escaped"], logs, tiny_data, monkeypatch, capsys)
    assert "run_name='x/../../../escaped' is invalid" in err, err
    # Hydra made the dir, and the folder runs/<time>_<id>_x on the way to it, before the
    # run refused it: the refused run removes both
    assert not [p for p in tmp_path.rglob("*escaped*")]
    assert not list((logs / "runs").iterdir())


def test_a_refused_run_named_with_a_slash_leaves_no_folder_but_the_users(
    tmp_path, tiny_data, monkeypatch, capsys
):
    """``run_name=study/arm`` is allowed (a folder per study); a run of it refused before it
    opened leaves neither folder, and an empty folder the user made stays."""
    logs = tmp_path / "logs"
    (logs / "runs" / "mine").mkdir(parents=True)
    err = refused(
        ["run_name=study/arm", "model.net.dropout=1.5"], logs, tiny_data, monkeypatch, capsys
    )
    assert "model.net.dropout=1.5 is invalid" in err, err
    assert [p.name for p in (logs / "runs").iterdir()] == ["mine"]


@pytest.mark.parametrize("under", ["", "sub"])
@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_run_or_sweep_dir_that_is_a_file_or_under_one_is_one_line(
    key, under, tmp_path, tiny_data, monkeypatch, capsys
):
    afile = tmp_path / "afile"
    afile.write_text("keep")
    target = afile / under if under else afile
    sweep = key == "hydra.sweep.dir"
    args = [f"{key}={target}"] + ["seed=1,2"] * sweep
    err = refused(args, tmp_path / "logs", tiny_data, monkeypatch, capsys, multirun=sweep)
    assert f"cannot write to {afile}" in err and f"(give a writable location: {key}," in err, err
    assert afile.read_text() == "keep"


def test_a_sweep_with_no_parallel_jobs_is_refused_before_its_sweep_dir(
    tmp_path, tiny_data, monkeypatch, capsys
):
    sweep = tmp_path / "sweep"
    err = refused(
        ["hydra/launcher=local_parallel", "hydra.launcher.n_jobs=0", "seed=1,2"]
        + [f"hydra.sweep.dir={sweep}"],
        tmp_path / "logs",
        tiny_data,
        monkeypatch,
        capsys,
        multirun=True,
    )
    assert "hydra.launcher.n_jobs=0 is invalid" in err, err
    assert not sweep.exists()


def test_a_folder_with_a_results_json_not_cnnlabs_is_never_written_over(
    tmp_path, tiny_data, monkeypatch, capsys
):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "results.json").write_text("hello")
    (theirs / "config.yaml").write_text("keep")
    err = refused([f"hydra.run.dir={theirs}"], tmp_path / "logs", tiny_data, monkeypatch, capsys)
    assert "results.json that is not a cnnlab run's record" in err, err
    assert sorted(p.name for p in theirs.iterdir()) == ["config.yaml", "results.json"]
    assert (theirs / "results.json").read_text() == "hello"
    assert (theirs / "config.yaml").read_text() == "keep"


def test_a_folder_of_other_files_is_never_written_into_but_a_run_killed_before_its_record_is(
    tmp_path, tiny_data, monkeypatch, capsys
):
    """No results.json: a folder of someone's files (here another Hydra app's) is refused,
    untouched; the same folder holding this run's own overrides (a run killed before its
    first record, relaunched) or only a train.log is this run's to write."""
    import yaml

    theirs = tmp_path / "theirs"
    (theirs / ".hydra").mkdir(parents=True)
    (theirs / ".hydra" / "overrides.yaml").write_text("- lr=0.1\n")
    (theirs / "config.yaml").write_text("keep")
    err = refused([f"hydra.run.dir={theirs}"], tmp_path / "logs", tiny_data, monkeypatch, capsys)
    assert f"{theirs} holds files of no cnnlab run of these overrides (.hydra, config.yaml)" in (
        err
    ), err
    assert sorted(p.name for p in theirs.rglob("*")) == [".hydra", "config.yaml", "overrides.yaml"]
    assert (theirs / "config.yaml").read_text() == "keep"

    args = [*FAST, "logger=none"]
    (theirs / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(args))
    got, _, err = train_inprocess(
        [*args, f"hydra.run.dir={theirs}"], monkeypatch, capsys, tiny_data, tmp_path / "logs"
    )
    assert got == 0, err
    assert json.loads((theirs / "results.json").read_text())["status"] == "completed"

    logged = tmp_path / "logged"
    logged.mkdir()
    (logged / "train.log").write_text("an earlier line\n")
    got, _, err = train_inprocess(
        [*args, f"hydra.run.dir={logged}"], monkeypatch, capsys, tiny_data, tmp_path / "logs"
    )
    assert got == 0, err
    assert (logged / "train.log").read_text().startswith("an earlier line\n")


@pytest.mark.parametrize(
    "args, multirun, says",
    [
        (["hydra.run.dir=''"], False, "hydra.run.dir='' is invalid: a folder for the run's"),
        (["hydra.sweep.dir=''", "seed=1,2"], True, "hydra.sweep.dir='' is invalid"),
        (["seed=range(1,1)"], True, "seed='range(1,1)' is invalid: a sweep of no value"),
    ],
)
def test_an_empty_output_dir_or_sweep_writes_nothing_into_the_working_dir(
    args, multirun, says, tmp_path, tiny_data, monkeypatch, capsys
):
    """'' as the run (or sweep) dir is the current directory: the run's files would land
    among the user's own; an empty sweep ran no job and said it was done (exit 0)."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    err = refused(args, tmp_path / "logs", tiny_data, monkeypatch, capsys, multirun=multirun)
    assert says in err, err
    assert not list(cwd.iterdir())


def test_an_unknown_flag_is_one_line_not_the_usage_block(tmp_path, tiny_data, monkeypatch, capsys):
    got, _, err = train_inprocess(["--foo", "seed=1"], monkeypatch, capsys, tiny_data, tmp_path)
    assert got == 2 and err.strip() == "cnnlab-train: unrecognized arguments: --foo", err


@pytest.mark.parametrize(
    "args,said",
    [
        (["data.download=false", "data.root={tmp}/no_data"], "mnist data not found"),
        (["++trainer.limit_train_batches=0"], "trainer.limit_train_batches=0 is invalid"),
        (["data.drop_last=true", "data.batch_size=100000"], "data.batch_size=100000 is invalid"),
    ],
)
def test_a_refusal_at_the_data_check_is_all_a_run_prints(
    args, said, tmp_path, tiny_data, monkeypatch, capsys
):
    """The last checks come after the Trainer is built: Lightning's lines on the devices
    it uses wait until they pass, so a refused run prints its one line and nothing else."""
    argv = [*FAST, "logger=none", *(a.format(tmp=tmp_path) for a in args)]
    got, out, err = train_inprocess(argv, monkeypatch, capsys, tiny_data, tmp_path / "logs")
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert got == 2 and len(lines) == 1 and said in lines[0], out + err


def test_held_device_lines_and_warnings_wait_for_release_or_go():
    """What Lightning says of the devices as a Trainer is built (a log line, and on a GPU
    machine with accelerator=cpu a warning): held while a run can still be refused, handed
    on in order once it cannot, dropped if it was."""
    import logging
    import warnings

    from cnnlab.console import Held

    log, seen = logging.getLogger("cnnlab.test.held"), []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        for released in (False, True):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                with Held(log.name) as held:
                    log.warning("GPU available: True (cuda), used: False")
                    warnings.warn("GPU available but not used.", UserWarning, stacklevel=1)
                assert seen == [] and caught == []
                if released:
                    held.release()
            said = [r.getMessage() for r in seen], [str(w.message) for w in caught]
            assert said == (
                (["GPU available: True (cuda), used: False"], ["GPU available but not used."])
                if released
                else ([], [])
            )
    finally:
        log.removeHandler(handler)


def test_an_ad_hoc_sweep_dir_ends_in_sweep_a_study_in_its_group(
    tmp_path, tiny_data, monkeypatch, capsys
):
    logs = tmp_path / "logs"
    for group in (None, "mine"):
        argv = ["-m", *FAST, "logger=none", "seed=1"] + [f"group={group}"] * bool(group)
        assert train_inprocess(argv, monkeypatch, capsys, tiny_data, logs)[0] == 0
    ends = sorted(d.name.rsplit("_", 1)[1] for d in (logs / "multiruns").iterdir())
    assert ends == ["mine", "sweep"]


@pytest.mark.parametrize(
    "args,said",
    [
        (["model.net.dropout=0.5=0.2"], "model.net.dropout=0.5=0.2 cannot be read: "),
        (["model.net.dropout=0.5)"], ": extraneous input ')' expecting <EOF>. See https://"),
        (["a b=1"], "a b=1 cannot be read: a character the override grammar does not allow."),
        (["sed=3"], "(Key 'sed' not in 'RunConfig'); did you mean seed?"),
        (
            ["++model.net.dropuot=0.5"],
            "model.net.dropuot=0.5 is invalid: no such argument; did you mean dropout? (MyCNN "
            "takes num_classes, in_channels, channels, hidden, dropout, batchnorm, seed_init)",
        ),
        (
            ["model.net.dropuot=0.5"],
            "did you mean model.net.dropout? model.net has: num_classes, in_channels, channels,",
        ),
        (
            ["experiment=ablation/dropuot"],
            "the options in 'experiment/ablation' are activation augmentation batchnorm "
            "dropout full transfer; did you mean experiment=ablation/dropout?",
        ),
        (
            ["model.init_from={tmp}/bad.ckpt"],
            "model.init_from='{tmp}/bad.ckpt' is invalid: corrupt or not a torch checkpoint "
            "(not the zip torch.save writes)",
        ),
        (["data.root="], "data.root='' is invalid: a folder holding MNIST/raw/ ('' would be"),
        (["data.root={tmp}/bad.ckpt"], "data.root='{tmp}/bad.ckpt' is invalid: a file; give the"),
    ],
)
def test_a_refusal_names_the_key_and_what_it_could_be(
    args, said, tmp_path, tiny_data, monkeypatch, capsys
):
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint" * 64)
    args = [a.format(tmp=tmp_path) for a in args]
    err = refused(args, tmp_path / "logs", tiny_data, monkeypatch, capsys)
    assert said.format(tmp=tmp_path) in err, err


def test_a_sweep_dir_holds_one_sweep_relaunched_or_extended_never_another(
    tmp_path, tiny_data, monkeypatch, capsys
):
    sweep, logs = tmp_path / "sweep", tmp_path / "logs"
    args = ["-m", *FAST, "logger=none", f"hydra.sweep.dir={sweep}", "seed=1,2"]
    assert train_inprocess(args, monkeypatch, capsys, tiny_data, logs)[0] == 0
    kept = {f: (sweep / f).read_text() for f in ("sweep.json", "multirun.yaml")}
    listed = sorted(p.name for p in sweep.iterdir())
    # another fixed value, another key swept, a search: refused before anything is written
    for other, said in (
        (["trainer.max_epochs=2"], "another sweep (this launch gives trainer.max_epochs=2)"),
        (["model.net.dropout=0.0,0.5"], "this launch gives model.net.dropout=0.0,0.5)"),
        (["hparams_search=optuna"], "holds the runs of a sweep (multirun.yaml, no search/"),
    ):
        err = refused(
            [f"hydra.sweep.dir={sweep}", *other, "seed=1,2"],
            logs,
            tiny_data,
            monkeypatch,
            capsys,
            multirun=True,
        )
        assert f"hydra.sweep.dir={str(sweep)!r} is invalid: it " in err and said in err, err
        assert {f: (sweep / f).read_text() for f in kept} == kept
        assert sorted(p.name for p in sweep.iterdir()) == listed
    # the same sweep with one more seed alone, then all of them (and resume=auto): it goes
    # on; the sweep's multirun.yaml stays its first launch's, sweep.json keeps every job
    for seeds, reasons in (("3", [None, None, None]), ("1,2,3", ["already completed"] * 3)):
        got, _, err = train_inprocess(
            [*args[:-1], f"seed={seeds}", "resume=auto"], monkeypatch, capsys, tiny_data, logs
        )
        assert got == 0, err
        jobs = json.loads((sweep / "sweep.json").read_text())["jobs"]
        assert [(j["status"], j["reason"]) for j in jobs] == [("completed", r) for r in reasons]
        assert [j.get("earlier_launch", False) for j in jobs] == [False, *[seeds == "3"] * 2]
        assert (sweep / "multirun.yaml").read_text() == kept["multirun.yaml"]
    # a launch refused for a bad key leaves no sweep dir (it would then hold another sweep)
    fresh = tmp_path / "fresh_sweep"
    err = refused(
        [f"hydra.sweep.dir={fresh}", "sed=1,2"], logs, tiny_data, monkeypatch, capsys, multirun=True
    )
    assert "did you mean seed?" in err and not fresh.exists()
    # an in-memory search relaunched into its dir: it cannot be continued, and says so
    memory = tmp_path / "memory_search"
    (memory / "search").mkdir(parents=True)
    (memory / "search" / "study.json").write_text(
        json.dumps({"storage": None, "study_name": "cnnlab", "process": "its-own-process"})
    )
    err = refused(
        [f"hydra.sweep.dir={memory}", "hparams_search=optuna"],
        logs,
        tiny_data,
        monkeypatch,
        capsys,
        multirun=True,
    )
    assert "holds a search kept in memory, which ended with its process and cannot be" in err
    # a sweep into a search's dir: refused too
    search = tmp_path / "search_dir"
    (search / "search").mkdir(parents=True)
    (search / "search" / "study.json").write_text("{}")
    err = refused(
        [f"hydra.sweep.dir={search}", "seed=1,2"],
        logs,
        tiny_data,
        monkeypatch,
        capsys,
        multirun=True,
    )
    assert "it holds an Optuna search's trials (search/study.json)" in err, err
    assert sorted(p.name for p in search.iterdir()) == ["search"]


def test_a_sweep_is_known_by_its_params_and_command_line_as_written():
    """What a study's relaunch is compared on: its config's sweeper params (as written, an
    interpolation unresolved) and its command line; seeds and resume= never differ."""
    from omegaconf import OmegaConf

    from cnnlab.run.rundir import other_sweep
    from hydra_plugins.cnnlab_launch.sweeper import sweep_specs

    saved = OmegaConf.create(
        {
            "sweeper": {
                "params": {"model.net.dropout": "0.0,${oc.env:NO_SUCH_VAR}", "seed": "1,2"}
            },
            "overrides": {"task": ["experiment=ablation/dropout"]},
        }
    )
    theirs = sweep_specs(saved)
    assert theirs == [
        "model.net.dropout=0.0,${oc.env:NO_SUCH_VAR}",
        "seed=1,2",
        "experiment=ablation/dropout",
    ]
    assert other_sweep(theirs, [*theirs, "seed=1,2,3,4,5,6", "resume=auto"]) is None
    assert other_sweep(theirs, [*theirs, "seed=4"]) is None
    assert other_sweep(theirs, [*theirs, "model.net.dropout=0.5,0.25"]) is None  # more arms
    assert other_sweep(theirs, [*theirs, "model.net.dropout=0.25"]) == (
        "this launch gives model.net.dropout=0.25, "
        "the sweep was made with model.net.dropout=0.0,${oc.env:NO_SUCH_VAR}"
    )
    assert "this launch gives experiment=ablation/batchnorm" in other_sweep(
        theirs, ["experiment=ablation/batchnorm"]
    )


@pytest.mark.parametrize("value", ["1.5", "0.25"])  # a bad value, and a good one
def test_a_completed_run_relaunched_with_other_overrides_is_refused_not_skipped(
    value, tmp_path, tiny_data, monkeypatch, capsys
):
    """Skipped, the completed run would stand (in a study, as its arm) for a run that was
    never made; the value was never checked either."""
    run = tmp_path / "logs" / "run"
    args = [*FAST, "logger=none", f"hydra.run.dir={run}"]
    assert train_inprocess(args, monkeypatch, capsys, tiny_data, tmp_path / "logs")[0] == 0
    before = (run / "results.json").read_text()
    err = refused(
        [f"hydra.run.dir={run}", f"model.net.dropout={value}"],
        tmp_path / "logs",
        tiny_data,
        monkeypatch,
        capsys,
    )
    assert f"{run} holds a completed run of other overrides (this launch gives " in err, err
    assert (run / "results.json").read_text() == before
    # the same launch again is a relaunch: skipped, exit 0
    assert train_inprocess(args, monkeypatch, capsys, tiny_data, tmp_path / "logs")[0] == 0
    assert (run / "results.json").read_text() == before


def readme_refusals() -> list[tuple[str, str]]:
    """README.md's examples of refused runs: each ``$ cnnlab-train …`` line of a ``text``
    block, and the line it is shown to print."""
    text = (REPO / "README.md").read_text()
    pairs = []
    for block in re.findall(r"```text\n(.*?)```", text, re.S):
        lines = block.splitlines()
        for command, said in zip(lines, lines[1:]):
            if command.startswith("$ cnnlab-train "):
                pairs.append((command.removeprefix("$ cnnlab-train "), said))
    return pairs


def test_the_readme_shows_what_a_refused_run_prints(tmp_path, tiny_data, monkeypatch, capsys):
    pairs = readme_refusals()
    assert len(pairs) >= 3
    for args, said in pairs:
        got, out, err = train_inprocess(
            shlex.split(args), monkeypatch, capsys, tiny_data, tmp_path / "logs"
        )
        assert got == 2 and err.strip() == said, (args, err)
