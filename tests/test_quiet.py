"""Quiet by default: what a user cannot act on stays off the console, kept in the log."""

from __future__ import annotations

import logging
import warnings

from conftest import cnnlab


def test_third_party_noise_goes_to_the_log_file_only(tmp_path, capsys):
    from cnnlab.console import quiet

    root = logging.getLogger()
    log = logging.FileHandler(tmp_path / "train.log")
    root.addHandler(log)
    seen: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda message, *args, **kwargs: seen.append(str(message))
            quiet()
            warnings.warn(
                "`isinstance(treespec, LeafSpec)` is deprecated", DeprecationWarning, stacklevel=1
            )
            warnings.warn("a warning the user can act on", UserWarning, stacklevel=1)
        logging.getLogger("lightning.pytorch.utilities.rank_zero").warning(
            "💡 Tip: For seamless cloud logging, try installing [litlogger]"
        )
    finally:
        root.removeHandler(log)
        log.close()
    assert seen == ["a warning the user can act on"]
    err = capsys.readouterr().err
    assert "LeafSpec" not in err and "litlogger" not in err
    kept = (tmp_path / "train.log").read_text()
    assert "LeafSpec" in kept and "litlogger" in kept


def test_noise_goes_to_the_log_of_the_job_now_not_of_the_job_that_set_it_up(tmp_path):
    # a job's log whose dir went (a refused or skipped job's staging dir), its handler closed
    # when the next job's logging replaced it: a record of noise after that must reach the
    # new log, not reopen the old path (it raised FileNotFoundError inside Lightning)
    import shutil

    from cnnlab.console import quiet

    root = logging.getLogger()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = logging.FileHandler(tmp_path / "a" / "train.log")
    root.addHandler(first)
    second = logging.FileHandler(tmp_path / "b" / "train.log")
    try:
        quiet()
        root.removeHandler(first)
        first.close()
        shutil.rmtree(tmp_path / "a")
        root.addHandler(second)
        logging.getLogger("lightning.pytorch.utilities.rank_zero").warning(
            "💡 Tip: For seamless cloud logging, try installing [litlogger]"
        )
    finally:
        root.removeHandler(second)
        second.close()
    assert "litlogger" in (tmp_path / "b" / "train.log").read_text()


def test_help_lists_no_internal_option(cli_env):
    proc = cnnlab(["--help"], cli_env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "experiment/ablation: activation, augmentation" in proc.stdout
    assert "ablation/_study" not in proc.stdout and ", _study" not in proc.stdout
