"""model.compile: torch.compile of the net, in place, so a compiled run's checkpoint is an
eager net's (resume, cnnlab-eval and transfer read it), and a bad backend is one line."""

from __future__ import annotations

import pytest
import torch

from conftest import FAST, cnnlab, results, run_dirs


def _weights(run_dir):
    (ckpt,) = (run_dir / "checkpoints").glob("last.ckpt")
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def _train(env, tmp_path, name, *extra):
    run_dir = tmp_path / name
    proc = cnnlab([*FAST, "logger=none", f"hydra.run.dir={run_dir}", *extra], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results(run_dir)["status"] == "completed"
    return run_dir


def test_a_compiled_run_trains_and_saves_the_eager_nets_weights(cli_env, tmp_path):
    # backend eager: dynamo traces the net (the compile path) without generating kernels
    compiled = _train(
        cli_env, tmp_path, "compiled", "model.compile=default", "model.compile_backend=eager"
    )
    eager = _train(cli_env, tmp_path, "eager")
    a, b = _weights(compiled), _weights(eager)
    assert list(a) == list(b) and not any("_orig_mod" in k for k in a)
    # the same kernels run under dynamo's eager backend: the same weights, bit for bit
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert results(compiled)["metrics"]["test/acc"] == results(eager)["metrics"]["test/acc"]


def test_an_unknown_compile_mode_or_backend_is_one_line(cli_env, tmp_path):
    for bad, says in (
        (["model.compile=default", "model.compile_backend=nope"], "compile_backend='nope'"),
        (["model.compile=fast"], "model.compile='fast' is invalid"),
    ):
        proc = cnnlab([*FAST, "logger=none", *bad], cli_env, timeout=300)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert says in proc.stderr and "Traceback" not in proc.stderr
    assert not any((d / "checkpoints").exists() for d in run_dirs(tmp_path / "logs"))


@pytest.mark.slow
def test_inductor_on_the_cpu_reruns_exactly(cli_env, tmp_path):
    # inductor generates C++ kernels here (minutes of compiling on 2 cores): a rerun of a
    # compiled run gives the same weights bit for bit; against the eager run, other kernels
    # (fused, reordered sums) give weights equal only to rounding
    first = _train(cli_env, tmp_path, "a", "model.compile=default")
    again = _train(cli_env, tmp_path, "b", "model.compile=default")
    a, b = _weights(first), _weights(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    eager = _weights(_train(cli_env, tmp_path, "eager"))
    assert all(torch.allclose(a[k].float(), eager[k].float(), atol=1e-3) for k in a)
