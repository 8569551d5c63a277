"""Every console command other than cnnlab-train checks its own flags: each flag given a value
of the wrong type, out of its range, or a location it cannot use is one line naming the flag,
exit 2, no traceback, before any file is read (the inputs here do not even exist)."""

from __future__ import annotations

import importlib

import pytest


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("x")
    return path


# (command's module, its fixed arguments, flag, bad values); "{file}" is an existing file
COMMANDS = {
    "cnnlab-eval": ("cnnlab.cli.evaluate", ["missing.ckpt"]),
    "cnnlab-show": ("cnnlab.cli.show", ["missing.ckpt"]),
    "cnnlab-rerun": ("cnnlab.cli.rerun", ["missing_run_dir"]),
    "cnnlab-search-report": ("cnnlab.cli.search_report", ["missing_sweep_dir"]),
    "cnnlab-compare": ("cnnlab.cli.compare", ["missing_study_dir"]),
}
CASES = [
    ("cnnlab-eval", "--accelerator", ["tpu", "7"]),
    ("cnnlab-eval", "--dataset", ["emnist", "1"]),
    ("cnnlab-eval", "--json", ["{file}/metrics.json", "{dir}", "{file}"]),  # not its file
    ("cnnlab-eval", "--data-root", ["{file}", "{file}/data", " "]),
    ("cnnlab-show", "--digits", ["four", "0", "11", "2.5", "nan"]),
    ("cnnlab-show", "--out", ["{file}", "{file}/show"]),
    ("cnnlab-show", "--dataset", ["emnist"]),
    ("cnnlab-show", "--data-root", ["{file}"]),
    ("cnnlab-rerun", "--tolerance", ["-1", "x", "nan", "inf", "-inf"]),
    ("cnnlab-rerun", "--out", ["{file}", "{file}/rerun"]),
    ("cnnlab-search-report", "--out", ["{file}", "{file}/report"]),
    ("cnnlab-compare", "--out", ["{file}", "{file}/comparison"]),
    ("cnnlab-compare", "--against", ["{file}", "{dir}/no_such_study"]),
    ("cnnlab-compare", "--readme", ["{dir}", "{dir}/no_such_README.md"]),
    ("cnnlab-compare", "--adjust", ["sidak", "1"]),
    ("cnnlab-compare", "--level", ["high", "0", "1", "1.5", "nan"]),
    ("cnnlab-compare", "--power", ["x", "0", "1", "-0.8", "inf"]),
    ("cnnlab-compare", "--effect-pp", ["x", "0", "-0.1", "nan"]),
    ("cnnlab-compare", "--margin-pp", ["x", "0", "-0.1", "inf"]),
    ("cnnlab-compare", "--stalled-below", ["x", "-0.1", "1.5", "nan"]),
    ("cnnlab-compare", "--min-gain-pp", ["x", "-1", "nan"]),
]


@pytest.mark.parametrize("tool,flag,value", [(t, f, v) for t, f, values in CASES for v in values])
def test_a_bad_flag_is_one_line_naming_it_and_exit_2(
    tool, flag, value, a_file, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    module, fixed = COMMANDS[tool]
    main = importlib.import_module(module).main
    value = value.format(file=a_file, dir=tmp_path)
    try:
        code = main([*fixed, f"{flag}={value}"])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"{tool}:") and flag in lines[0] and value in lines[0], err


@pytest.mark.parametrize("tool", COMMANDS)
def test_a_missing_input_is_one_line_and_exit_2(tool, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module, fixed = COMMANDS[tool]
    code = importlib.import_module(module).main(fixed)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and lines and lines[-1].startswith(f"{tool}:") and fixed[0] in lines[-1], err
    assert "Traceback" not in err
