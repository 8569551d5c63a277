"""The Optuna search: sweep syntax, storage, resume after SIGKILL, processes sharing a study,
pruning, failed jobs, bad input, and the report. End-to-end tests run cnnlab-train on tiny data."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from cnnlab.cli import search_report
from cnnlab.errors import ConfigError
from cnnlab.launch.summary import JobProblem, JobResult
from cnnlab.search import report
from cnnlab.search.liveness import OWNER_ATTR, Owner, is_stale
from cnnlab.search.space import format_value, parse
from cnnlab.search.storage import load_study, open_storage, open_study, parse_storage
from cnnlab.search.sweep import Settings, make_sampler
from conftest import FAST, REPO, cnnlab

optuna.logging.set_verbosity(optuna.logging.WARNING)

# --- the search space ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("interval(0.0, 0.6)", FloatDistribution(0.0, 0.6)),
        ("tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
        ("tag(int, interval(8, 64))", IntDistribution(8, 64)),
        ("tag(log, int, interval(8, 64))", IntDistribution(8, 64, log=True)),
        ("range(16, 129, 16)", IntDistribution(16, 128, step=16)),  # 16, 32, ..., 128
        ("range(1, 4)", IntDistribution(1, 3)),  # stop excluded, as in Python
        ("range(10, 0, -5)", IntDistribution(5, 10, step=5)),  # 10, 5
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("choice(32, 64, 128)", CategoricalDistribution((32, 64, 128))),
        ("choice(false, true)", CategoricalDistribution((False, True))),
        ("lenet5,convnet", CategoricalDistribution(("lenet5", "convnet"))),
    ],
)
def test_hydra_sweep_syntax_becomes_optuna_distributions(text, expected):
    space = parse({"k": text})
    assert space.distributions == {"k": expected}
    assert space.fixed == []


def test_plain_values_and_the_command_line():
    space = parse(
        {"a": "interval(0, 1)", "b": 3, "c": "choice(1, 2)"},
        ["c=5", "model/net=lenet5,convnet", "trainer.max_epochs=2"],
    )
    # the command line wins over the config: c is fixed at 5, model/net is searched
    assert list(space.distributions) == ["a", "model/net"]
    assert space.fixed == ["b=3", "c=5", "trainer.max_epochs=2"]
    assert space.overrides({"a": 0.25, "model/net": "convnet"}) == ["a=0.25", "model/net=convnet"]


@pytest.mark.parametrize(
    "text, says",
    [
        ("choice()", "empty choice is not legal"),
        ("interval(0.5, 0.1)", "needs low < high"),
        ("interval(0.1, 0.1)", "needs low < high"),
        ("range(5, 1)", "is empty"),
        ("normal(0, 1)", "Unknown function 'normal'"),
        ("tag(lgo, interval(1, 2))", "unknown tag 'lgo'"),
        ("tag(log, interval(0, 1))", "needs low > 0"),
        ("tag(int, interval(1.5, 3))", "needs whole numbers"),
        ("choice(1, 1)", "listed twice"),
        ("choice([1, 2], [3])", "single value"),
        ("glob(*)", "not a search distribution"),
        ("tag(log, range(0.1, 1, 0.1))", "stepped float range"),
    ],
)
def test_a_bad_search_space_is_one_line_naming_the_key(text, says):
    with pytest.raises(ConfigError) as err:
        parse({"model.net.dropout": text})
    message = str(err.value)
    assert message.startswith(f"hydra.sweeper.params.model.net.dropout={text!r} is invalid: ")
    assert says in message and "\n" not in message
    assert message.count("is invalid") == 1


@pytest.mark.parametrize(
    "value",
    [
        0.1,
        1e-05,
        3,
        True,
        False,
        None,
        "lenet5",
        "a b",
        "1",
        "true",
        "null",
        "it's",
        "x,y",
        "back\\slash",
        "end\\",
    ],
)
def test_a_trial_value_reads_back_as_itself(value):
    parsed = OverridesParser.create().parse_override(f"k={format_value(value)}")
    assert parsed.value() == value and type(parsed.value()) is type(value)


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("direction", "up", "maximize or minimize"),
        ("n_trials", 0, ">= 1"),
        ("n_jobs", 0, ">= 1"),
        ("sampler", {"seed": 1}, "_target_"),
        ("stale_after_s", 1, "greater than heartbeat_s"),
        ("n_trails", 5, "not a setting"),
        ("monitor", "foo", "one of the logged metrics"),  # each trial would fail at epoch 1
    ],
)
def test_bad_sweeper_settings(name, value, says):
    with pytest.raises(ConfigError, match=says) as err:
        Settings.from_config({name: value})
    assert str(err.value).startswith(f"hydra.sweeper.{name}=")


def test_an_unknown_sampler_is_a_config_error():
    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.sampler='optuna\.samplers\.Nope'"):
        make_sampler({"_target_": "optuna.samplers.Nope", "seed": 1})


def test_a_negative_sampler_count_is_a_config_error():  # Optuna takes it silently
    with pytest.raises(ConfigError, match=r"hydra\.sweeper\.sampler\.n_startup_trials=-1"):
        make_sampler({"_target_": "optuna.samplers.TPESampler", "n_startup_trials": -1})


def test_an_old_optuna_is_one_line_saying_what_to_install(monkeypatch):
    from cnnlab.search.sweep import _require_optuna

    _require_optuna()  # the one installed here
    monkeypatch.setattr(optuna, "__version__", "2.10.1")
    with pytest.raises(ConfigError, match=r"needs optuna>=4 \(found 2\.10\.1\): pip install"):
        _require_optuna()


# --- seeding --------------------------------------------------------------------------------


def _ask_params(study, space):
    trial = study.ask(space)
    return trial.number, trial.params


def test_a_seeded_sampler_draws_per_trial_number_not_per_process(tmp_path):
    """Two processes (two sampler objects) on one study must not propose the same startup
    trials, and a trial's draw depends on (seed, number) only: reproducible anywhere."""
    space = parse({"x": "interval(0, 1)", "y": "choice(1, 2, 3, 4, 5, 6, 7, 8)"}).distributions
    spec = {"_target_": "optuna.samplers.TPESampler", "seed": 7, "n_startup_trials": 10}
    storage = optuna.storages.InMemoryStorage()
    a = optuna.create_study(storage=storage, study_name="s", sampler=make_sampler(spec))
    b = optuna.load_study(storage=storage, study_name="s", sampler=make_sampler(spec))
    drawn = [_ask_params(a, space), _ask_params(b, space), _ask_params(a, space)]
    assert [n for n, _ in drawn] == [0, 1, 2]
    assert len({repr(p) for _, p in drawn}) == 3
    # a fresh study with the same seed draws trial 0 and 1 as above
    c = optuna.create_study(sampler=make_sampler(spec))
    assert [_ask_params(c, space) for _ in range(2)] == drawn[:2]


# --- telling job outcomes -------------------------------------------------------------------


def _job_return(value):
    """What Hydra hands the sweeper for a job that returned ``value`` or raised it."""
    from hydra.core.utils import JobReturn, JobStatus

    raised = isinstance(value, Exception)
    return JobReturn(
        overrides=["x=1"],
        _return_value=value,
        status=JobStatus.FAILED if raised else JobStatus.COMPLETED,
    )


@pytest.mark.parametrize(
    "value, state, reason, failures, queued",
    [
        (0.75, TrialState.COMPLETE, None, 0, 0),
        (None, TrialState.FAIL, "no finite val/acc_best", 1, 0),
        (float("nan"), TrialState.FAIL, "no finite val/acc_best", 1, 0),
        (JobResult("pruned", 0.5, "pruned after epoch 1"), TrialState.PRUNED, "pruned after", 0, 0),
        (JobResult("skipped", None, "no weights"), TrialState.FAIL, "no weights", 1, 0),
        (JobProblem("failed", "lr=-1 is invalid"), TrialState.FAIL, "lr=-1 is invalid", 1, 0),
        (RuntimeError("boom"), TrialState.FAIL, "RuntimeError: boom", 1, 0),
        # stopped from outside: no fault of its parameters, which run again once
        (JobProblem("interrupted", "SIGTERM"), TrialState.FAIL, "SIGTERM", 0, 1),
    ],
)
def test_each_job_outcome_is_told_to_its_trial(value, state, reason, failures, queued):
    from omegaconf import OmegaConf

    from cnnlab.search.sweep import Search

    host = type("Host", (), {"config": OmegaConf.create({"optimized_metric": "val/acc_best"})})
    search = Search(Settings.from_config({}), host())
    search.space = parse({"x": "interval(0, 1)"})
    search.study = optuna.create_study(direction="maximize")
    trial = search.study.ask(search.space.distributions)
    search._tell(trial, _job_return(value), 0)
    told = search.study.trials[0]
    assert told.state == state
    assert told.value == (0.75 if state == TrialState.COMPLETE else None)
    if reason is None:
        assert told.user_attrs["reason"] is None
    else:
        assert reason in told.user_attrs["reason"]
    assert search.failures == failures
    waiting = search.study.get_trials(states=(TrialState.WAITING,))
    assert [(t.system_attrs["fixed_params"], t.user_attrs) for t in waiting] == [
        (trial.params, {"retry_of": 0})
    ] * queued


@pytest.mark.parametrize("n_trials, surplus", [(3, True), (4, False)])
def test_a_trial_with_n_trials_ahead_of_it_is_surplus_and_never_runs(n_trials, surplus):
    """Two processes asking at once both see room for one more: the later number yields."""
    from omegaconf import OmegaConf

    from cnnlab.search.sweep import Search

    host = type("Host", (), {"config": OmegaConf.create({})})
    search = Search(Settings.from_config({"n_trials": n_trials}), host())
    search.space = parse({"x": "interval(0, 1)"})
    search.study = optuna.create_study()
    search.storage_obj = search.study._storage
    for _ in range(2):  # 2 with a result, and 1 running in another process
        search.study.tell(search.study.ask(search.space.distributions), 0.5)
    search.study.ask(search.space.distributions)
    batch = search._ask(1)
    mine = search.study.trials[3]
    assert [t.number for t in batch] == ([] if surplus else [3])
    assert mine.state == (TrialState.FAIL if surplus else TrialState.RUNNING)
    assert mine.user_attrs.get("surplus", False) is surplus
    assert mine.system_attrs[OWNER_ATTR]["token"] == search.owner.token


class FakeLauncher:
    """Runs 'jobs' in no time: each returns its x; the first call fails if told to."""

    def __init__(self, fail_first: bool) -> None:
        self.fail_first, self.calls = fail_first, []

    def launch(self, jobs, initial_job_idx):
        self.calls.append([list(j) for j in jobs])
        if self.fail_first and len(self.calls) == 1:
            raise RuntimeError("a worker died")
        return [
            _job_return(float(next(o for o in j if o.startswith("x=")).split("=")[1])) for j in jobs
        ]


@pytest.mark.parametrize("max_failures", [None, 1])
def test_a_failing_launcher_fails_its_trials_and_the_search_goes_on(tmp_path, max_failures):
    from omegaconf import OmegaConf

    from cnnlab.launch.summary import SweepIncomplete
    from cnnlab.search.sweep import run_search

    host = type("Host", (), {})()
    host.config = OmegaConf.create(
        {
            "optimized_metric": "val/acc_best",
            "hydra": {"sweep": {"dir": str(tmp_path)}, "runtime": {"cwd": str(tmp_path)}},
        }
    )
    host.validate_batch_is_legal = lambda batch: None
    host.launcher = FakeLauncher(fail_first=True)
    settings = {
        "n_trials": 2,
        "max_failures": max_failures,
        "params": {"x": "interval(0, 1)"},
        "sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 3},
    }
    if max_failures == 1:  # gives up after the launcher's failure: 0 of 2 trials, exit 1
        with pytest.raises(SweepIncomplete, match="stopped after 1 failed jobs"):
            run_search(settings, host, [])
        assert len(host.launcher.calls) == 1
    else:
        returns = run_search(settings, host, [])
        assert len(returns) == 2 and len(host.launcher.calls) == 3
    info = yaml.safe_load((tmp_path / "search" / "best.yaml").read_text())
    assert info["trials"] == ({"fail": 1} if max_failures else {"complete": 2, "fail": 1})
    rows = list(csv.DictReader((tmp_path / "search" / "trials.csv").open()))
    assert rows[0]["state"] == "FAIL" and rows[0]["reason"].startswith("launcher: RuntimeError")
    for row in rows[1:]:  # each job got its own trial's x and subdir
        assert float(row["value"]) == float(row["x"])
    jobs = [j for call in host.launcher.calls for j in call]
    assert [j[-1] for j in jobs] == [f"hydra.sweep.subdir=trial_{n:04d}" for n in range(len(jobs))]


# --- storage --------------------------------------------------------------------------------


def test_storage_settings(tmp_path):
    assert parse_storage(None).kind == "memory"
    j = parse_storage("runs/s.journal", cwd=tmp_path)
    assert (j.kind, j.url) == ("journal", str(tmp_path / "runs" / "s.journal"))
    assert parse_storage("journal:s.log", cwd=tmp_path).url == str(tmp_path / "s.log")
    s = parse_storage("sqlite:///opt.db", cwd=tmp_path)
    assert (s.kind, s.url) == ("rdb", f"sqlite:///{tmp_path / 'opt.db'}")
    pg = parse_storage("postgresql://me:secret@db.example/optuna")
    assert pg.url == "postgresql://me:secret@db.example/optuna"  # what jobs are given
    assert "secret" not in pg.shown()  # what is printed


def test_an_unreachable_storage_is_a_config_error(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ConfigError, match="cannot open it") as err:
        open_storage(parse_storage(f"sqlite:///{tmp_path}/a_file/optuna.db"))
    assert str(err.value).startswith("hydra.sweeper.storage=") and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="cannot open it"):
        open_storage(parse_storage("nosuchdb://host/x"))
    with pytest.raises(ConfigError, match="no such file"):  # a report does not create one
        load_study(str(tmp_path / "missing.journal"), "s")
    assert not (tmp_path / "missing.journal").exists()


def test_a_study_with_the_other_direction_is_a_config_error(tmp_path):
    storage = parse_storage(f"sqlite:///{tmp_path}/o.db")
    open_study(open_storage(storage), storage, "s", "maximize")
    with pytest.raises(ConfigError, match="was created to maximize") as err:
        open_study(open_storage(storage), storage, "s", "minimize")
    assert str(err.value).startswith("hydra.sweeper.direction='minimize' is invalid")
    again = open_study(open_storage(storage), storage, "s", "maximize")  # same direction: resumes
    assert again.study_name == "s"


# --- which running trials are stale ----------------------------------------------------------


def _running_trial(owner_attr=None, heartbeat=None):
    study = optuna.create_study()
    trial = study.ask()
    if owner_attr is not None:
        study._storage.set_trial_system_attr(trial._trial_id, OWNER_ATTR, owner_attr)
    if heartbeat is not None:
        study._storage.set_trial_system_attr(trial._trial_id, "cnnlab:heartbeat", heartbeat)
    return study.trials[0]


def test_a_trial_of_a_dead_local_process_is_stale_at_once():
    me = Owner.me()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=60)
    now = time.time()
    dead = {**me.attr(), "pid": gone.pid, "token": "other"}
    assert is_stale(_running_trial(dead), me, now, stale_after_s=3600)
    alive = {**me.attr(), "pid": os.getppid(), "start": None, "token": "other"}
    assert not is_stale(_running_trial(alive), me, now, stale_after_s=1)
    assert not is_stale(_running_trial(me.attr()), me, now + 10_000, stale_after_s=1)  # mine


def test_a_trial_of_another_machine_is_stale_when_its_heartbeat_stops():
    me = Owner.me()
    remote = {**me.attr(), "host": "elsewhere"}
    now = time.time()
    assert not is_stale(_running_trial(remote, heartbeat=now - 100), me, now, stale_after_s=180)
    assert is_stale(_running_trial(remote, heartbeat=now - 200), me, now, stale_after_s=180)
    no_owner = _running_trial()  # judged by when it started
    assert not is_stale(no_owner, me, now, stale_after_s=180)
    assert is_stale(no_owner, me, now + 181, stale_after_s=180)


# --- pruning with a bare Lightning trainer -----------------------------------------------------


def _fit_with_pruning(callback, max_epochs=3):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Model(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _):
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, _):  # val/acc = 0.1, 0.2, 0.3 ... by epoch
            self.log("val/acc", 0.1 * (self.current_epoch + 1))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    data = DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=4)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[callback] if callback else [],
    )
    trainer.fit(Model(), data, data)
    return trainer


def _journal_study(tmp_path, pruner):
    from cnnlab.search.storage import PRUNER_ATTR

    setting = f"journal:{tmp_path / 'p.journal'}"
    storage = parse_storage(setting)
    study = open_study(open_storage(storage), storage, "p", "maximize")
    study._storage.set_study_system_attr(study._study_id, PRUNER_ATTR, pruner)
    trial = study.ask({"x": FloatDistribution(0, 1)})
    search = {
        "storage": setting,
        "study_name": "p",
        "trial_number": trial.number,
        "monitor": "val/acc",
        "owner": "someone",
    }
    return study, trial, search


def test_the_callback_reports_each_epoch_and_does_not_prune_without_a_pruner(tmp_path):
    from cnnlab.search.pruning import callback_for

    study, trial, search = _journal_study(tmp_path, None)
    callback = callback_for({"search": search})  # opens the study from the journal file
    trainer = _fit_with_pruning(callback)
    assert trainer.current_epoch == 3 and callback.pruned is False
    values = study.trials[trial.number].intermediate_values
    assert values == pytest.approx({0: 0.1, 1: 0.2, 2: 0.3})


def test_the_callback_stops_the_run_when_the_pruner_says_so(tmp_path):
    from cnnlab.search.pruning import callback_for

    # prune anything below 2.0 (val/acc never is): stop after the first validation
    study, trial, search = _journal_study(
        tmp_path, {"_target_": "optuna.pruners.ThresholdPruner", "lower": 2.0}
    )
    callback = callback_for({"search": search})
    trainer = _fit_with_pruning(callback)
    assert callback.pruned is True and callback.pruned_at == 0
    assert trainer.current_epoch == 1  # one epoch of three
    assert study.trials[trial.number].intermediate_values == pytest.approx({0: 0.1})


def test_no_callback_outside_a_search_or_out_of_reach(tmp_path, caplog):
    from cnnlab.search.pruning import callback_for

    assert callback_for({"search": None}) is None
    assert callback_for({}) is None
    # an in-memory study of another process (joblib, SLURM): no callback, one warning
    assert (
        callback_for(
            {"search": {"storage": None, "study_name": "s", "trial_number": 0, "owner": "not-here"}}
        )
        is None
    )
    assert "in-memory study lives in another process" in caplog.text
    # a storage that is gone: the run goes on without pruning
    assert (
        callback_for(
            {
                "search": {
                    "storage": str(tmp_path / "gone.journal"),
                    "study_name": "s",
                    "trial_number": 0,
                }
            }
        )
        is None
    )


# --- the report ---------------------------------------------------------------------------------


def test_the_report_from_a_study(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="r")
    x = FloatDistribution(0, 1)
    for value, state, attrs in [
        (0.5, TrialState.COMPLETE, {"overrides": ["x=0.5"]}),
        (0.9, TrialState.COMPLETE, {"overrides": ["x=0.9"], "metrics": {"test/acc": 0.88}}),
        (None, TrialState.FAIL, {"reason": "boom"}),
        (None, TrialState.FAIL, {"surplus": True}),
        (0.7, TrialState.COMPLETE, {"overrides": ["x=0.7"]}),
    ]:
        trial = study.ask({"x": x})
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        study.tell(trial, value, state=state)
    info = report.write(study, tmp_path / "out", "in-memory")
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best == info
    assert best["best"]["number"] == 1 and best["best"]["value"] == 0.9
    assert best["best"]["overrides"] == ["x=0.9"] and best["best"]["metrics"] == {"test/acc": 0.88}
    assert best["trials"] == {"complete": 3, "fail": 1}  # the surplus trial never ran
    rows = list(csv.DictReader((tmp_path / "out" / "trials.csv").open()))
    assert [(r["number"], r["state"]) for r in rows] == [
        ("0", "COMPLETE"),
        ("1", "COMPLETE"),
        ("2", "FAIL"),
        ("4", "COMPLETE"),
    ]
    assert rows[2]["reason"] == "boom" and rows[1]["test/acc"] == "0.88"
    for png in ("history.png", "importances.png"):
        assert (tmp_path / "out" / png).stat().st_size > 5000, png
    assert "best trial 1: 0.9 with x=0.9" in report.describe(info, tmp_path / "out")


def test_search_report_command_bad_input_exits_2(tmp_path, capsys):
    assert search_report.main([str(tmp_path)]) == 2
    assert "not a search's sweep dir" in capsys.readouterr().err
    assert (
        search_report.main(["--storage", str(tmp_path / "none.journal"), "--study-name", "s"]) == 2
    )
    assert "no such file" in capsys.readouterr().err
    storage = parse_storage(f"sqlite:///{tmp_path}/r.db")
    open_study(open_storage(storage), storage, "there", "maximize")
    assert search_report.main(["--storage", storage.url, "--study-name", "other"]) == 2
    assert "no study 'other'" in capsys.readouterr().err
    assert search_report.main(["--storage", storage.url]) == 2


# --- end to end: cnnlab-train -m hparams_search=optuna on tiny data ---------------------------

SEARCH = [
    "-m",
    "hparams_search=optuna",
    *FAST,
    "logger=none",
    "test=false",
    "trainer.max_epochs=1",
    "hydra/sweeper/pruner=none",
    # sweep syntax on the command line replaces those params of the config...
    "model.optimizer.lr=tag(log,interval(1e-3,1e-2))",
    "model.net.dropout=interval(0.0,0.5)",
    # ...and a plain value fixes one (data.batch_size is fixed by FAST)
    "model.net.batchnorm=false",
]
TABLE = re.compile(r"sweep: (\d+) of (\d+) jobs completed")


def _args(tmp_path, storage, study, n_trials, sweep="sweep", *more):
    return [
        *SEARCH,
        f"hydra.sweeper.storage={storage}",
        f"hydra.sweeper.study_name={study}",
        f"hydra.sweeper.n_trials={n_trials}",
        f"hydra.sweep.dir={tmp_path / sweep}",
        *more,
    ]


def _start(args, env, log_path):
    exe = Path(sys.executable).parent / "cnnlab-train"
    log = open(log_path, "w")  # noqa: SIM115 - open for the child's whole life, closed by the caller
    return subprocess.Popen(
        [str(exe), *args],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _jobs_run(output: str) -> int:
    found = TABLE.findall(output)
    assert len(found) == 1, output[-3000:]
    return int(found[0][1])


def _results(run_dir) -> dict:
    return json.loads((Path(run_dir) / "results.json").read_text())


def _training_after(journal: Path, study: str, sweep: Path, done: int) -> bool:
    """At least ``done`` trials complete, and a RUNNING one whose run has started training."""
    if not journal.exists():
        return False
    try:
        trials = load_study(str(journal), study).trials
    except KeyError:  # the sweeper has not created the study yet
        return False
    running = [t for t in trials if t.state == TrialState.RUNNING]
    return sum(t.state == TrialState.COMPLETE for t in trials) >= done and any(
        (sweep / f"trial_{t.number:04d}" / "results.json").exists() for t in running
    )


@pytest.mark.slow  # 25-95 s each in CI
def test_a_search_killed_after_3_trials_resumes_to_exactly_6(cli_env, tmp_path):
    journal = tmp_path / "optuna.journal"
    # every tiny run reaches val/acc 1.0: minimise the loss, so that values tell trials apart
    args = _args(
        tmp_path,
        journal,
        "resume",
        6,
        "sweep",
        "optimized_metric=val/loss_min",
        "hydra.sweeper.direction=minimize",
        "trainer.max_epochs=2",
    )
    first = _start(args, cli_env, tmp_path / "first.log")
    deadline = time.monotonic() + 180
    try:  # poll the study as a user would; kill once 3 trials are done and the next is training
        while not _training_after(journal, "resume", tmp_path / "sweep", done=3):
            assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "3 trials did not complete in 180 s"
            time.sleep(0.1)
    finally:
        if first.poll() is None:  # the sweeper: with the local launcher, its jobs too
            first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    killed = load_study(str(journal), "resume").trials
    before = {t.number: t for t in killed if t.state == TrialState.COMPLETE}
    cut = [t for t in killed if t.state == TrialState.RUNNING]
    assert 3 <= len(before) < 6 and len(cut) == 1
    stamps = {
        n: Path(t.user_attrs["run_dir"], "results.json").stat().st_mtime_ns
        for n, t in before.items()
    }

    proc = cnnlab(args, cli_env, timeout=240)  # the same command again
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "continuing study 'resume'" in out
    trials = load_study(str(journal), "resume").trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    for n, old in before.items():  # kept as they were, not re-run
        now = trials[n]
        assert (now.state, now.params, now.value, now.datetime_complete) == (
            old.state,
            old.params,
            old.value,
            old.datetime_complete,
        )
        assert Path(now.user_attrs["run_dir"], "results.json").stat().st_mtime_ns == stamps[n]
    assert _jobs_run(out) == 6 - len(before)  # the relaunch ran only the missing trials
    # the trial cut off by the kill is failed as stale and its parameters run again, once
    stale = trials[cut[0].number]
    assert stale.state == TrialState.FAIL and stale.user_attrs["reason"].startswith("stale")
    assert [t.params for t in complete if t.user_attrs.get("retry_of") == stale.number] == [
        cut[0].params
    ]
    assert [t.state for t in trials].count(TrialState.FAIL) == 1
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    best = yaml.safe_load((tmp_path / "sweep" / "search" / "best.yaml").read_text())
    assert best["trials"]["complete"] == 6
    assert best["best"]["value"] == min(t.value for t in complete)
    assert len({t.value for t in complete}) == 6


def test_two_processes_share_one_sqlite_study(cli_env, tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    # one sweep dir too: trial dirs must not clash
    args = _args(tmp_path, url, "shared", 6, "sweep", "hydra.sweeper.poll_s=1")
    procs = [_start(args, cli_env, tmp_path / f"p{i}.log") for i in range(2)]
    try:
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
    outs = [(tmp_path / f"p{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outs)
    trials = load_study(url, "shared").trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6
    # none lost, none run twice: 6 jobs between the two processes, each in its own dir
    assert sum(_jobs_run(o) for o in outs) == 6
    run_dirs = {t.user_attrs["run_dir"] for t in complete}
    assert len(run_dirs) == 6
    for t in complete:
        res = _results(t.user_attrs["run_dir"])
        assert res["status"] == "completed"
        assert res["metrics"]["val/acc_best"] == t.value
        assert f"trial_number:{t.number}," in " ".join(res["overrides"])
    owners = {t.system_attrs[OWNER_ATTR]["pid"] for t in complete}
    assert owners == {p.pid for p in procs}, "both processes ran trials"
    # anything else is a surplus trial that two processes asked for at once: never run
    for t in trials:
        if t.state != TrialState.COMPLETE:
            assert t.state == TrialState.FAIL and t.user_attrs.get("surplus"), t


def test_parallel_jobs_through_the_joblib_launcher(cli_env, tmp_path):
    journal = tmp_path / "j.journal"
    proc = cnnlab(
        _args(tmp_path, journal, "joblib", 2, "sweep", "hydra/launcher=local_parallel"),
        cli_env,
        timeout=240,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    trials = load_study(str(journal), "joblib").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    # n_jobs defaults to the launcher's 2: both trials ran at once, in worker processes
    assert max(t.datetime_start for t in trials) < min(t.datetime_complete for t in trials)
    assert _jobs_run(proc.stdout + proc.stderr) == 2
    # the report again, on demand, from the study the sweep dir names
    written = (tmp_path / "sweep" / "search" / "best.yaml").read_text()
    (tmp_path / "sweep" / "search" / "best.yaml").unlink()
    again = subprocess.run(
        [sys.executable, "-m", "cnnlab.cli.search_report", str(tmp_path / "sweep")],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "sweep" / "search" / "best.yaml").read_text() == written
    assert "best trial" in again.stdout


def test_failed_jobs_are_failed_trials_not_a_crashed_search(cli_env, tmp_path):
    journal = tmp_path / "f.journal"
    proc = cnnlab(
        _args(
            tmp_path,
            journal,
            "fails",
            3,
            "sweep",
            "model.optimizer.lr=choice(-1.0,-2.0)",
            "hydra.sweeper.max_failures=2",
        ),
        cli_env,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]  # the sweep says jobs failed...
    assert "search stopped after 2 failed jobs" in out and "2 of 2 jobs did not complete" in out
    trials = load_study(str(journal), "fails").trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 2  # ...and the study records why
    for t in trials:
        assert "model.optimizer.lr" in t.user_attrs["reason"]
    best = yaml.safe_load((tmp_path / "sweep" / "search" / "best.yaml").read_text())
    assert best["best"] is None and best["trials"] == {"fail": 2}


@pytest.mark.parametrize("case", ["space", "unknown key", "storage", "direction"])
def test_bad_input_is_one_line_before_any_trial(cli_env, tmp_path, case):
    db = tmp_path / "d.db"
    more, says = {
        "space": (
            ["model.net.dropout=interval(0.5, 0.1)"],
            "model.net.dropout='interval(0.5, 0.1)' is invalid: "
            "interval(low, high) needs low < high",
        ),
        "unknown key": (
            ["model.net.dropoutt=interval(0.1, 0.5)"],  # composed before trial 0
            "model.net.dropoutt='interval(0.1, 0.5)' is invalid: "
            "Could not override 'model.net.dropoutt'.",
        ),
        "storage": (
            [f"hydra.sweeper.storage=sqlite:///{tmp_path}/a_file/x.db"],
            f"hydra.sweeper.storage='sqlite:///{tmp_path}/a_file/x.db' is invalid: cannot open it",
        ),
        "direction": (
            ["hydra.sweeper.direction=minimize"],
            "hydra.sweeper.direction='minimize' is invalid: study 'bad' in "
            f"sqlite:///{db} was created to maximize",
        ),
    }[case]
    (tmp_path / "a_file").write_text("")
    storage = parse_storage(f"sqlite:///{db}")
    open_study(open_storage(storage), storage, "bad", "maximize")
    proc = cnnlab(_args(tmp_path, storage.url, "bad", 2, "sweep", *more), cli_env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert says in out, out[-3000:]
    assert "Traceback" not in out
    assert not list((tmp_path / "sweep").glob("trial_*")), "no trial ran"
    assert load_study(storage.url, "bad").trials == []


def test_pruned_trials_with_in_memory_storage_in_process(cli_env, tmp_path):
    """The runner adds callback_for(cfg) and returns status 'pruned'; in memory, jobs of the
    local launcher reach the study in the sweeper's process."""
    sweep = tmp_path / "sweep"
    proc = cnnlab(
        [
            *SEARCH,
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep}",
            "trainer.max_epochs=3",  # prune anything below val/acc 2.0: all, at epoch 0
            "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
            "+hydra.sweeper.pruner.lower=2.0",
        ],
        cli_env,
        timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    best = yaml.safe_load((sweep / "search" / "best.yaml").read_text())
    assert best["trials"] == {"pruned": 2} and best["best"] is None
    assert "curves.png" in best["files"]  # the val/acc each job reported per epoch
    rows = list(csv.DictReader((sweep / "search" / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["PRUNED", "PRUNED"]
    for row in rows:
        assert _results(row["run_dir"])["epochs"] == 1  # of 3: stopped after the first
