"""cnnlab-rerun: run a past run again from what it saved, and say what came out different."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.table import Table
from rich.text import Text

from cnnlab.cli import flags
from cnnlab.config import conf_dir, targets
from cnnlab.config.overrides import key_of, merged, without
from cnnlab.console import error, out
from cnnlab.errors import EXIT_BAD_INPUT, EXIT_FAILED, BadInput, ConfigError
from cnnlab.files import read_text, write_bytes
from cnnlab.results import RERUN, load_results, read_results
from cnnlab.run.rundir import load_overrides
from cnnlab.search.space import format_value

# Hydra and the run schema are imported after the flags are checked: a bad flag is answered
# at once

NOT_RECORDED = "not recorded by the original"  # a field newer code writes; not a difference


def run_threads(device: dict[str, Any]) -> int | None:
    """The torch threads a run used (runs from before ``torch_threads`` stored them as
    ``cpu_count``)."""
    return device.get("torch_threads", device.get("cpu_count"))


def pinned_overrides(resolved: Any, provenance: dict[str, Any]) -> list[str]:
    """What came from the environment rather than the command line, pinned as it was.

    The data folder, and the torch thread count: a parallel launcher gave the job
    cores / n_jobs threads, and a CPU reduction split over another number of threads sums
    in another order, so the same seed would not give the same bits.
    """
    saved = OmegaConf.to_container(resolved, resolve=False) if resolved is not None else {}
    root = (saved.get("data") or {}).get("root") if isinstance(saved, dict) else None
    pinned = [f"data.root={root}"] if isinstance(root, str) and "${" not in root else []
    pinned.append("data.download=false")  # a path from a file: read from, never downloaded into
    device = provenance.get("device") if isinstance(provenance, dict) else None
    threads = run_threads(device if isinstance(device, dict) else {})
    if threads is None and isinstance(saved, dict):
        threads = saved.get("torch_threads")
    if isinstance(threads, int) and threads > 0:
        pinned.append(f"torch_threads={threads}")
    return pinned


def compared_metrics(res: dict[str, Any]) -> dict[str, float]:
    """Every number a rerun should reproduce: final metrics and the per-epoch history."""
    out = {k: v for k, v in (res.get("metrics") or {}).items() if isinstance(v, (int, float))}
    for row in res.get("history") or []:
        for k, v in row.items():
            if k not in ("epoch", "time_s", "step") and isinstance(v, (int, float)):
                out[f"epoch {row['epoch']} {k}"] = v
    out["epochs"] = res.get("epochs")
    return out


def diff_metrics(old: dict[str, Any], new: dict[str, Any], tolerance: float):
    """Rows (name, old, new, verdict, ok) for every metric in either run."""
    rows = []
    for key in sorted(set(old) | set(new), key=_order):
        a, b = old.get(key), new.get(key)
        if a is None and b is not None:
            rows.append((key, a, b, NOT_RECORDED, True))
            continue
        if b is None:
            rows.append(
                (key, a, b, "missing in rerun" if a is not None else "identical", a is None)
            )
            continue
        delta = abs(float(a) - float(b))
        if delta == 0 or (math.isnan(a) and math.isnan(b)):
            rows.append((key, a, b, "identical", True))
        else:
            rows.append((key, a, b, f"differs by {delta:.3g}", delta <= tolerance))
    return rows


def _order(key: str):
    return (key.startswith("epoch "), key)


def provenance_warnings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    warnings = []
    for section in ("versions", "data_md5"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                warnings.append(f"{section}.{k}: {a.get(k)} → {b.get(k)}")
    ga, gb = old.get("git") or {}, new.get("git") or {}
    if ga.get("commit") != gb.get("commit"):
        warnings.append(f"git commit: {ga.get('commit')} → {gb.get('commit')}")
    if gb.get("dirty"):
        warnings.append("git: the source tree has uncommitted changes")
    da, db = old.get("device") or {}, new.get("device") or {}
    ta, tb = run_threads(da), run_threads(db)
    if (da.get("gpu"), ta) != (db.get("gpu"), tb):
        warnings.append(
            f"device: {da.get('gpu') or 'cpu'}/{ta} threads → {db.get('gpu') or 'cpu'}/{tb} threads"
        )
    for key in ("cpu_model", "cpu_capability"):  # other CPU kernels: expect other last bits
        if key in da and key in db and da[key] != db[key]:
            warnings.append(
                f"{key}: {da[key]} → {db[key]} (CPU results are bit-identical "
                f"only on the same kind of CPU)"
            )
    return warnings


@flags.command("cnnlab-rerun")
def main(argv: list[str] | None = None) -> int:
    parser = flags.Parser(prog="cnnlab-rerun", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run dir written by cnnlab-train")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied on top")
    parser.add_argument(
        "--tolerance",
        type=flags.number(0),
        default=0.0,
        help="largest absolute difference still accepted (default 0: bit-identical)",
    )
    parser.add_argument("--out", type=Path, help="dir of the rerun (default: beside the original)")
    parser.add_argument(
        "--config-dir",
        type=Path,
        help="the config dir the run was trained with (cnnlab-train's "
        "--config-dir, e.g. your own repo's conf/)",
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="apply the run dir's saved overrides whatever they build or where "
        "they write (only for run dirs you wrote yourself)",
    )
    args = parser.parse_args(argv)
    flags.out_dir("--out", args.out)
    flags.in_dir("run_dir", args.run_dir)

    run_dir = args.run_dir.resolve()
    try:
        if args.config_dir is not None and not args.config_dir.is_dir():
            raise BadInput(
                f"--config-dir {args.config_dir}: not a directory (give the config "
                "dir the run was trained with)"
            )
        old, saved, resolved = load_run(run_dir)
        # the pins (data folder, threads) replace what the file says; the user's win over all
        overrides = without(
            merged(
                merged(saved, pinned_overrides(resolved, old.get("provenance") or {})),
                args.overrides,
            ),
            ("resume", "ckpt_path", "search"),
        )
        out_dir = (
            args.out or run_dir.parent / f"{run_dir.name}-rerun-{time.strftime('%H%M%S')}"
        ).resolve()
        # a rerun trains into a new folder: into the run itself (a completed run is skipped,
        # so the run was compared with itself) or a folder holding files (a sweep's root,
        # which then reads as one more run) it would report what it never ran
        if out_dir.is_dir() and any(out_dir.iterdir()):
            raise BadInput(
                f"--out {out_dir} already holds files"
                + (" (it is the run being rerun)" if out_dir == run_dir else "")
                + ": give a new or empty folder"
            )
        if not args.trust:
            check_saved(saved, overrides, run_dir, out_dir, args.config_dir, args.overrides)
    except (ConfigError, BadInput) as err:
        error(str(err), "cnnlab-rerun")
        return EXIT_BAD_INPUT
    out.print(
        Text.assemble(
            ("rerunning ", "bold"), f"{run_dir.name} → {out_dir}\n  ", " ".join(overrides)
        )
    )
    extra = ["--config-dir", str(args.config_dir.resolve())] if args.config_dir else []
    # quoted: a sweep run's dir name ("dropout=0.5,seed=1") is not a bare override value
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnnlab.cli.train",
            *extra,
            *overrides,
            f"hydra.run.dir={format_value(str(out_dir))}",
        ]
    )
    new = read_results(out_dir)
    if new is None and proc.returncode == EXIT_BAD_INPUT:
        return EXIT_BAD_INPUT  # refused before it started: cnnlab-train's one line says why
    if new is None:
        error(f"the rerun did not start (exit {proc.returncode})", "cnnlab-rerun")
        return EXIT_FAILED
    if new.get("status") != "completed":
        error(
            f"the rerun {new.get('status')}: {new.get('error') or f'exit {proc.returncode}'}",
            "cnnlab-rerun",
        )
        return EXIT_FAILED
    return report(run_dir, out_dir, old, new, args.tolerance)


def load_run(run_dir: Path) -> tuple[dict[str, Any], list[str], Any]:
    """A run dir's record, saved overrides and saved config (or BadInput saying why not),
    each read as bounded data from inside the run dir."""
    if (
        not (run_dir / ".hydra" / "overrides.yaml").exists()
        or not (run_dir / "results.json").exists()
    ):
        raise BadInput(
            f"{run_dir} is not a cnnlab run dir (needs .hydra/overrides.yaml and results.json)"
        )
    old, saved = load_results(run_dir, root=run_dir), load_overrides(run_dir, root=run_dir)
    config = run_dir / "config.yaml"
    if not config.exists():
        return old, saved, None
    text = read_text(config, "config", root=run_dir)
    try:
        return old, saved, OmegaConf.create(text)
    except Exception as err:  # noqa: BLE001 - a malformed file is the file's problem
        raise BadInput(f"{config} is not a readable config: {str(err).splitlines()[0]}") from None


def check_saved(
    saved: list[str],
    overrides: list[str],
    run_dir: Path,
    out_dir: Path,
    config_dir: Path | None = None,
    given: list[str] | None = None,
) -> None:
    """A run dir's overrides may not choose where the rerun writes, call a resolver, or
    compose a config that builds anything but cnnlab's kind of objects or writes outside
    the rerun's dir and cnnlab's log folder, checked once resolved as the rerun would
    resolve it (the rerun itself is not started)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    import cnnlab.config.schema  # noqa: F401  (registers run_schema, as cnnlab-train does)

    source = f"the saved overrides of {run_dir}"
    targets.check_overrides(saved, source)
    # the user's --config-dir, as cnnlab-train adds it: ahead of cnnlab's own configs
    where = f"file://{config_dir.resolve()}" if config_dir else None  # quoted: a , or = in it
    search = [f"hydra.searchpath=[{format_value(where)}]"] if where else []

    def composed(these: list[str]) -> Any:
        with initialize_config_dir(conf_dir(), version_base="1.3"):
            return compose("train", overrides=these + search, return_hydra_config=True)

    try:
        cfg = composed(overrides)
    except Exception as err:  # noqa: BLE001 - Hydra refusing the file's overrides, or the user's
        if given:
            try:  # without what the command line added: then those are at fault
                composed(without(overrides, [key_of(o) for o in given]))
            except Exception:  # noqa: BLE001 - the file's own
                pass
            else:
                from cnnlab.cli.train import known_keys

                raise BadInput(
                    f"the overrides given on the command line ({' '.join(given)}) do not "
                    f"compose: {str(err).splitlines()[0]}{known_keys(err.__cause__)}"
                ) from None
        raise ConfigError(
            ".hydra/overrides.yaml",
            ConfigError.NODE,
            f"{source} do not compose: {str(err).splitlines()[0]}",
        ) from None
    # hydra.* is cnnlab's own (a file may not set it); the job's config is checked as
    # composed, then as resolved the way the rerun's job resolves it
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    targets.check(job, source)
    cfg.hydra.runtime.output_dir = str(out_dir)
    HydraConfig.instance().set_config(cfg)
    try:
        resolved = OmegaConf.to_container(job, resolve=True)
    except Exception as err:  # noqa: BLE001 - a reference the saved overrides break
        raise ConfigError(
            ".hydra/overrides.yaml",
            ConfigError.NODE,
            f"{source} do not resolve: {str(err).splitlines()[0]}",
        ) from None
    targets.check(resolved, source)
    log_dir = Path(str(resolved["paths"]["log_dir"]))
    targets.check_writes(resolved, [out_dir, log_dir], source)


def report(
    run_dir: Path, out_dir: Path, old: dict[str, Any], new: dict[str, Any], tolerance: float
) -> int:
    """The table of every metric, rerun.json, and the exit code (1: beyond tolerance)."""
    for w in provenance_warnings(old.get("provenance") or {}, new.get("provenance") or {}):
        out.print(Text.assemble(("warning: ", "yellow"), w))
    rows = diff_metrics(compared_metrics(old), compared_metrics(new), tolerance)
    table = Table(title=Text(f"rerun of {run_dir.name}"))
    for col in ("metric", "original", "rerun", "verdict"):
        table.add_column(col, justify="right" if col in ("original", "rerun") else "left")
    for key, a, b, verdict, ok in rows:
        style = "green" if verdict == "identical" else ("yellow" if ok else "red")
        table.add_row(Text(key), _fmt(a), _fmt(b), Text(verdict, style=style))
    out.print(table)
    compared = [r for r in rows if r[3] != NOT_RECORDED]
    bad = [r for r in rows if not r[4]]
    summary = {
        "original": str(run_dir),
        "rerun": str(out_dir),
        "tolerance": tolerance,
        "identical": all(r[3] == "identical" for r in compared),
        "differences": [
            {"metric": k, "original": a, "rerun": b, "verdict": v}
            for k, a, b, v, _ in rows
            if v != "identical"
        ],
    }
    write_bytes(out_dir / RERUN, json.dumps(summary, indent=2) + "\n")
    if bad:
        out.print(
            Text(
                f"{len(bad)} of {len(rows)} metrics differ beyond tolerance {tolerance}",
                style="bold red",
            )
        )
        return EXIT_FAILED
    out.print(
        Text(
            f"all {len(compared)} metrics within tolerance {tolerance} "
            f"({'identical' if summary['identical'] else 'close'})",
            style="bold green",
        )
    )
    return 0


def _fmt(v: Any) -> str:
    return "—" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


if __name__ == "__main__":
    sys.exit(main())
