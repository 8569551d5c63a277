"""Loading a study: its runs' results.json (and saved overrides, config, test predictions)
into ``Run`` records, grouped into arms by the overrides that differ between them.

Every file is read through ``read_bytes``, the one place that touches a study's files.
"""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnnlab import files
from cnnlab.config import arms as arm_names
from cnnlab.config.arms import SEED_KEYS
from cnnlab.config.overrides import NOT_RUN_KEYS, as_dict
from cnnlab.errors import BadInput
from cnnlab.results import RERUN, RESULTS, RESUMED_IN, load_results

# W&B (and Lightning, through run.loggers) are imported only for --wandb

GRAD_PREFIX = "grad_norm/"
PREDICTIONS = "test_predictions.npz"  # written by the runner's test step


class CompareError(ValueError):
    """Bad input to cnnlab-compare (a path with no runs, an unknown reference arm)."""


@dataclass
class Run:
    path: Path
    overrides: dict[str, str]
    status: str  # completed | failed | skipped | running | interrupted | missing
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs: int | None = None
    fit_time_s: float | None = None
    reference: str | None = None
    correct: np.ndarray | None = None  # per test image, 1 where the prediction was right
    setup: dict[str, Any] = field(default_factory=dict)  # machine, versions, budget: run_setup
    rerun_of: Path | None = None  # the run that cnnlab-rerun repeated into this dir

    @property
    def seed(self) -> str | None:
        return self.overrides.get("seed")

    @property
    def gap(self) -> float | None:
        """Final train accuracy − test accuracy: the run's own, or from its history (runs
        recorded before results.json carried it)."""
        if "gap/train_test" in self.metrics:
            return self.metrics["gap/train_test"]
        final = self.history[-1].get("train/acc") if self.history else None
        test = self.metrics.get("test/acc")
        return None if final is None or test is None else final - test

    @property
    def gap_in_eval_mode(self) -> bool:
        """The gap's training accuracy was measured in eval mode (not an epoch average
        with dropout and augmentation on)."""
        return "train/acc_eval" in self.metrics

    @property
    def grad_norms(self) -> dict[str, float]:
        """Per-layer gradient norms of the last epoch that sampled them, in network order."""
        for row in reversed(self.history):
            norms = {
                k[len(GRAD_PREFIX) :]: v
                for k, v in row.items()
                if k.startswith(GRAD_PREFIX) and v is not None
            }
            if norms:
                return norms
        return {}


def read_bytes(path: Path, study_root: Path | None = None) -> bytes | None:
    """A file of a study, or None when it is missing, unreadable, too large or leads out
    of ``study_root`` (the study it belongs to): the one place that reads one."""
    try:
        return files.read_bytes(path, "record", study_root)
    except (OSError, BadInput):
        return None


def read_json(path: Path, study_root: Path | None = None) -> Any:
    raw = read_bytes(path, study_root)
    try:
        return None if raw is None else json.loads(raw)
    except ValueError:
        return None


def read_yaml(path: Path, study_root: Path | None = None) -> Any:
    """Plain YAML: nothing in a study's files is interpolated or resolved while reading."""
    raw = read_bytes(path, study_root)
    try:
        return None if raw is None else yaml.safe_load(raw.decode())
    except (ValueError, yaml.YAMLError):  # malformed: as if missing
        return None


def read_correct(path: Path, study_root: Path | None = None) -> np.ndarray | None:
    """Per-image correctness (uint8 0/1) from a run's saved test predictions."""
    raw = read_bytes(path, study_root)
    if raw is None:
        return None
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as saved:
            return (saved["pred"] == saved["target"]).astype(np.uint8)
    except Exception:  # noqa: BLE001 - missing or malformed: the run has none
        return None


def load_run(path: Path, study_root: Path | None = None) -> Run:
    try:
        res, unread = load_results(path, study_root), None
    except BadInput as err:  # the reason names the file, never quotes it
        res, unread = None, str(err)
    saved = read_yaml(path / ".hydra" / "overrides.yaml", study_root)
    overrides = (
        [str(o) for o in saved]
        if isinstance(saved, list)
        else [str(o) for o in (res or {}).get("overrides") or []]
    )
    parsed = as_dict(overrides)
    config = read_yaml(path / ".hydra" / "config.yaml", study_root)
    reference = config.get("study_reference") if isinstance(config, dict) else None
    rerun = read_json(path / RERUN, study_root)
    original = rerun.get("original") if isinstance(rerun, dict) else None
    rerun_of = Path(original) if isinstance(original, str) else None
    if res is None:
        missing = unread is None or unread.endswith("does not exist")
        return Run(
            path,
            parsed,
            "missing",
            "no results.json (the job died before writing it)" if missing else unread,
            reference=reference,
            rerun_of=rerun_of,
        )
    return Run(
        path,
        parsed,
        res.get("status", "missing"),
        res.get("error"),
        metrics={k: v for k, v in (res.get("metrics") or {}).items() if v is not None},
        history=res.get("history") or [],
        epochs=res.get("epochs"),
        fit_time_s=res.get("fit_time_s"),
        reference=reference,
        correct=read_correct(path / PREDICTIONS, study_root),
        setup=run_setup(res, config, read_yaml(path / ".hydra" / "hydra.yaml", study_root)),
        rerun_of=rerun_of,
    )


def _plain(value: Any) -> Any:
    """A config value as recorded, or None where it is an unresolved interpolation."""
    return None if isinstance(value, str) and "${" in value else value


def _dig(tree: Any, dotted: str) -> Any:
    if isinstance(tree, dict) and dotted in tree:  # W&B's copy of a config: flat, dotted keys
        return _plain(tree[dotted])
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return _plain(tree)


def _launcher(hydra: Any) -> str | None:
    """How the sweep's jobs ran, from .hydra/hydra.yaml's launcher."""
    target = str(_dig(hydra, "hydra.launcher._target_") or "")
    n_jobs = _dig(hydra, "hydra.launcher.n_jobs")
    if target.endswith("BasicLauncher"):
        return "1 job at a time"
    if "slurm" in target.lower():
        limit = _dig(hydra, "hydra.launcher.array_parallelism")
        return "SLURM jobs" + (f", up to {limit} at a time" if limit else "")
    if n_jobs == 1:
        return "1 job at a time"
    if isinstance(n_jobs, int) and n_jobs > 1:
        return f"{n_jobs} jobs in parallel"
    if isinstance(n_jobs, int) and n_jobs < 0:  # joblib: -1 is one a core
        return f"joblib n_jobs={n_jobs} (jobs by cores)"
    return None


def _sweep_of(hydra: Any) -> str | None:
    out = _dig(hydra, "hydra.runtime.output_dir")
    if not out:
        return None
    return str(Path(out).parent) if _dig(hydra, "hydra.mode") == "MULTIRUN" else str(out)


def run_setup(res: dict, config: Any, hydra: Any) -> dict[str, Any]:
    """What a study's README says about how a run ran, from its own records: the machine
    (provenance), the launcher (.hydra/hydra.yaml), the budget (.hydra/config.yaml and, for
    a completed run, the epochs it trained), the versions and the time it took. A fact a
    record does not hold is None (unknown), never a default."""
    prov = res.get("provenance") or {}
    device = prov.get("device") or {}
    versions = prov.get("versions") or {}
    target = _dig(config, "model.optimizer._target_")
    scheduler = _dig(config, "model.scheduler._target_")
    cpu = " ".join(str(x) for x in (device.get("cpu_model"), device.get("cpu_capability")) if x)
    # records from before torch_threads held the thread count in cpu_count (cli/rerun.py)
    threads = device.get("torch_threads", device.get("cpu_count"))
    cores = device.get("cpu_count") if "torch_threads" in device else None
    validation = _dig(config, "data.validation")
    return {
        "cpu": cpu or None,
        "cpu_count": cores,
        "gpu": (device.get("gpu") or "no GPU") if "gpu" in device else None,
        "torch_threads": threads,
        "launcher": _launcher(hydra),
        "torch": versions.get("torch"),
        "lightning": versions.get("lightning"),
        "cnnlab": versions.get("cnnlab"),
        "commit": str((prov.get("git") or {}).get("commit") or "")[:10] or None,
        "net": str(_dig(config, "model.net._target_") or "").rpartition(".")[2] or None,
        "epochs": res.get("epochs") if res.get("status") == "completed" else None,
        "study_budget": _dig(config, "study_budget"),
        "batch_size": _dig(config, "data.batch_size"),
        "held_out": "none" if validation is False else _dig(config, "data.val_fraction"),
        "optimizer": str(target).rpartition(".")[2] if target else None,
        "lr": _dig(config, "model.optimizer.lr"),
        "betas": _dig(config, "model.optimizer.betas"),
        "scheduler": str(scheduler).rpartition(".")[2] if scheduler else None,
        "test_ckpt": _dig(config, "test_ckpt"),
        "run_time_s": res.get("session_wall_time_s"),
        # which sweep the run came from (a run outside one is its own), counted by
        # study_setup: fit times from different sweeps ran at different times
        # the job's own folder is resolved in hydra.yaml, hydra.sweep.dir is not (a template
        # with ${now:...}): a multirun job's sweep is the folder its job folder is in
        "sweep": _sweep_of(hydra),
    }


def study_setup(runs: list[Run]) -> dict[str, Any]:
    """The runs' setups together: each fact's distinct values in order of first appearance
    (a study's runs may come from several sweeps), the run time summed over the runs that
    recorded one (and how many did not), runs by status, how many sweeps they came from
    (a count: the sweeps' paths are the publisher's own)."""
    statuses = [r.status for r in runs]
    times = [r.setup.get("run_time_s") for r in runs]
    facts: dict[str, Any] = {
        "runs": len(runs),
        "status": {s: statuses.count(s) for s in sorted(set(statuses))},
        "run_time_s": sum(t for t in times if t is not None),
        "run_time_missing": sum(t is None for t in times),
        "sweeps": len({r.setup["sweep"] for r in runs if r.setup.get("sweep")}) or None,
    }
    for key in dict.fromkeys(k for r in runs for k in r.setup):
        if key not in ("run_time_s", "sweep"):
            seen = [r.setup[key] for r in runs if r.setup.get(key) is not None]
            facts[key] = list({json.dumps(v): v for v in seen}.values())
    return facts


def run_dirs(root: Path) -> list[Path]:
    """The run dirs below (or at) a study dir: each holds a results.json or a Hydra record
    (a job refused or killed early has one without the other); W&B's files are not runs,
    nor the fresh dir of a ``resume=auto`` session that went on in an earlier run's dir."""
    found = {
        p.parent.parent if p.parent.name == ".hydra" else p.parent
        for pattern in (RESULTS, ".hydra/overrides.yaml")
        for p in root.rglob(pattern)
        if "wandb" not in p.parts
    }
    return sorted(d for d in found if (d / RESULTS).exists() or not (d / RESUMED_IN).exists())


def load_runs(paths: list[Path]) -> list[Run]:
    """Every run below the given study (or run) dirs, each once (paths that overlap, or
    the same study given twice, would count a seed twice)."""
    runs: list[Run] = []
    seen: set[Path] = set()
    stubs: list[tuple[Path, str]] = []
    for root in paths:
        if not root.exists():
            raise CompareError(f"{root} does not exist")
        found = run_dirs(root)
        if not found and (root / RESUMED_IN).is_file():
            went = (read_bytes(root / RESUMED_IN, root) or b"").decode(errors="replace").strip()
            stubs.append((root, went))  # no run: fine when its run is among the paths
            continue
        if not found:
            raise CompareError(
                f"{root} holds no cnnlab runs (no results.json or .hydra/overrides.yaml below it)"
            )
        new = [p for p in found if p.resolve() not in seen]
        seen.update(p.resolve() for p in new)
        runs += [load_run(p, root) for p in new]
    for stub, went in stubs:
        if not went or Path(went).resolve() not in seen:
            raise CompareError(
                f"{stub} is a resume=auto session's dir, no run: its run went on in {went}"
            )
    return runs


def without_keys(runs: list[Run], keys) -> list[Run]:
    """Copies of the runs without the given overrides (the runs themselves keep theirs):
    keys that do not make arms, e.g. a budget test's ``study_budget`` or ``--ignore``'s."""
    return [
        dataclasses.replace(r, overrides={k: v for k, v in r.overrides.items() if k not in keys})
        for r in runs
    ]


def arm_keys(runs: list[Run]) -> list[str]:
    """The overrides whose values differ between runs: what the study swept (not the seed,
    nor how a run was continued: a resumed run is its arm's run)."""
    keys = sorted({k for r in runs for k in r.overrides} - set(SEED_KEYS) - set(NOT_RUN_KEYS))
    return [k for k in keys if len({r.overrides.get(k) for r in runs}) > 1]


def arm_label(run: Run, keys: list[str]) -> str:
    return ", ".join(f"{k}={run.overrides.get(k, '')}" for k in keys) or "all"


def display_labels(arms: dict[str, list[Run]]) -> dict[str, str]:
    """Each arm's label with short key names (``dropout=0.25``), as W&B names it."""
    keys = arm_keys([r for runs in arms.values() for r in runs])
    return {
        label: arm_names.label(runs[0].overrides, keys) if keys else label
        for label, runs in arms.items()
    }


def group_arms(runs: list[Run]) -> dict[str, list[Run]]:
    """The runs by arm; one run per seed in each (two would count one seed twice, and
    pairing by seed would silently keep one of them)."""
    keys = arm_keys(runs)
    arms: dict[str, list[Run]] = {}
    for run in runs:
        label = arm_label(run, keys)
        arm = arms.setdefault(label, [])
        twin = next((r for r in arm if run.seed is not None and r.seed == run.seed), None)
        if twin is not None:
            raise CompareError(
                f"{twin.path} and {run.path} are both seed {run.seed} of arm '{label}': one "
                "run per seed and arm (give paths, or a W&B --group, that hold each seed of an "
                "arm once)"
            )
        arm.append(run)
    return dict(sorted(arms.items(), key=lambda kv: _natural(kv[0])))


def leave_out_reruns(runs: list[Run]) -> tuple[list[Run], list[tuple[Run, Path]]]:
    """The runs without those that cnnlab-rerun made of another run in the same list (by
    default it writes beside the original, i.e. into the study's sweep dir: a second copy
    of a seed, not another one), and those left out with their originals."""
    there = {r.path.resolve() for r in runs}
    kept: list[Run] = []
    left: list[tuple[Run, Path]] = []
    for run in runs:
        if run.rerun_of is not None and run.rerun_of.resolve() in there:
            left.append((run, run.rerun_of))
        else:
            kept.append(run)
    return kept, left


def _natural(label: str):
    out = []
    for part in label.replace(",", " ").split():
        key, _, value = part.partition("=")
        try:
            out.append((key, 0, float(value), ""))
        except ValueError:
            out.append((key, 1, 0.0, value))
    return out


def runs_from_wandb(path: str, group: str | None) -> list[Run]:
    """The same records, read from the W&B API (needs credentials and a network)."""
    from cnnlab.run.loggers import wandb_credentials_present

    if not wandb_credentials_present():
        raise CompareError(
            "--wandb needs W&B credentials (WANDB_API_KEY or `wandb login`) "
            "and a network; offline runs: compare their run dirs instead"
        )
    import wandb

    try:
        api = wandb.Api(timeout=30)
        found = api.runs(path, filters={"group": group} if group else None)
        runs = []
        for wr in found:
            cfg = dict(wr.config)
            overrides = as_dict(
                o for o in cfg.get("provenance", {}).get("overrides", []) if "=" in str(o)
            )
            summary = dict(wr.summary)
            status = {"finished": "completed", "crashed": "failed", "failed": "failed"}.get(
                wr.state, wr.state
            )
            runs.append(
                Run(
                    Path(f"wandb:{wr.id}"),
                    overrides,
                    status,
                    metrics={
                        k: summary[k]
                        for k in ("test/acc", "test/loss", "val/acc_best")
                        if k in summary
                    },
                    reference=cfg.get("study_reference"),
                    setup=run_setup(
                        {"provenance": cfg.get("provenance")},  # no epochs: W&B has none
                        cfg,
                        None,
                    ),
                )
            )
    except Exception as err:
        raise CompareError(f"could not read {path} from W&B: {err}") from None
    if not runs:
        raise CompareError(f"no W&B runs in {path}" + (f" with group {group!r}" if group else ""))
    return runs
