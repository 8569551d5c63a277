"""The Optuna search: Hydra sweep syntax to Optuna distributions, the storage a study lives
in (in memory, journal file, SQL), and the report written from a study."""

from __future__ import annotations

import csv

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from cnnlab.errors import ConfigError
from cnnlab.search import report
from cnnlab.search.space import format_value, parse
from cnnlab.search.storage import load_study, open_storage, open_study, parse_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

# --- the search space ----------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("interval(0.0, 0.6)", FloatDistribution(0.0, 0.6)),
    ("tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
    ("tag(int, interval(8, 64))", IntDistribution(8, 64)),
    ("tag(log, int, interval(8, 64))", IntDistribution(8, 64, log=True)),
    ("range(16, 129, 16)", IntDistribution(16, 128, step=16)),   # 16, 32, ..., 128
    ("range(1, 4)", IntDistribution(1, 3)),                      # stop excluded, as in Python
    ("range(10, 0, -5)", IntDistribution(5, 10, step=5)),        # 10, 5
    ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
    ("choice(32, 64, 128)", CategoricalDistribution((32, 64, 128))),
    ("choice(false, true)", CategoricalDistribution((False, True))),
    ("lenet5,convnet", CategoricalDistribution(("lenet5", "convnet"))),
])
def test_hydra_sweep_syntax_becomes_optuna_distributions(text, expected):
    space = parse({"k": text})
    assert space.distributions == {"k": expected}
    assert space.fixed == []


def test_plain_values_and_the_command_line():
    space = parse({"a": "interval(0, 1)", "b": 3, "c": "choice(1, 2)"},
                  ["c=5", "model/net=lenet5,convnet", "trainer.max_epochs=2"])
    # the command line wins over the config: c is fixed at 5, model/net is searched
    assert list(space.distributions) == ["a", "model/net"]
    assert space.fixed == ["b=3", "c=5", "trainer.max_epochs=2"]
    assert space.overrides({"a": 0.25, "model/net": "convnet"}) == ["a=0.25", "model/net=convnet"]


@pytest.mark.parametrize("text, says", [
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
])
def test_a_bad_search_space_is_one_line_naming_the_key(text, says):
    with pytest.raises(ConfigError) as err:
        parse({"model.net.dropout": text})
    message = str(err.value)
    assert message.startswith(f"hydra.sweeper.params.model.net.dropout={text!r} is invalid: ")
    assert says in message and "\n" not in message
    assert message.count("is invalid") == 1


@pytest.mark.parametrize("value", [0.1, 1e-05, 3, True, False, None, "lenet5", "a b", "1",
                                   "true", "null", "it's", "x,y", "back\\slash", "end\\"])
def test_a_trial_value_reads_back_as_itself(value):
    parsed = OverridesParser.create().parse_override(f"k={format_value(value)}")
    assert parsed.value() == value and type(parsed.value()) is type(value)


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
    assert "secret" not in pg.shown()                              # what is printed


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


# --- the report ---------------------------------------------------------------------------------


def test_the_report_from_a_study(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="r")
    x = FloatDistribution(0, 1)
    for value, state, attrs in [(0.5, TrialState.COMPLETE, {"overrides": ["x=0.5"]}),
                                (0.9, TrialState.COMPLETE, {"overrides": ["x=0.9"],
                                                             "metrics": {"test/acc": 0.88}}),
                                (None, TrialState.FAIL, {"reason": "boom"}),
                                (None, TrialState.FAIL, {"surplus": True}),
                                (0.7, TrialState.COMPLETE, {"overrides": ["x=0.7"]})]:
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
        ("0", "COMPLETE"), ("1", "COMPLETE"), ("2", "FAIL"), ("4", "COMPLETE")]
    assert rows[2]["reason"] == "boom" and rows[1]["test/acc"] == "0.88"
    for png in ("history.png", "importances.png"):
        assert (tmp_path / "out" / png).stat().st_size > 5000, png
    assert "best trial 1: 0.9 with x=0.9" in report.describe(info, tmp_path / "out")


def test_search_report_command_bad_input_exits_2(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert "not a search's sweep dir" in capsys.readouterr().err
    assert report.main(["--storage", str(tmp_path / "none.journal"), "--study-name", "s"]) == 2
    assert "no such file" in capsys.readouterr().err
    storage = parse_storage(f"sqlite:///{tmp_path}/r.db")
    open_study(open_storage(storage), storage, "there", "maximize")
    assert report.main(["--storage", storage.url, "--study-name", "other"]) == 2
    assert "no study 'other'" in capsys.readouterr().err
    assert report.main(["--storage", storage.url]) == 2


