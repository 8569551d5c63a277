"""Which arm of a study a run is, and what the run is called on W&B and on disk.

A study's arms are the values of its swept keys (the seed excepted): the keys the sweeper
varies, declared in ``hydra.sweeper.params`` (the studies) or on the command line
(``-m model.net.dropout=0.0,0.5``). A key is shown by the shortest end of its dotted or
slashed path that no other swept key shares (``model.net.dropout`` → ``dropout``,
``data/augmentation`` → ``augmentation``), so a run of the dropout study is called
``dropout=0.25 seed=2`` and a run of the full study
``dropout=0.5 batchnorm=true augmentation=rotation seed=1``.

The names are pure functions of a job's overrides: a relaunched sweep gives a job the same
run dir (and so the same results.json and W&B id) whatever order its jobs come in.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

from cnnlab.config.overrides import as_dict

# Hydra and OmegaConf are imported where a job's names are resolved: cnnlab-compare reads
# arm names without them

SEED_KEYS = ("seed",)
W_AND_B_TAG_MAX = 64  # wandb refuses longer tags
_PATH_SAFE = re.compile(r"[A-Za-z0-9._=+ -]")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_DIRNAME = 120


def short_keys(keys: Iterable[str]) -> dict[str, str]:
    """Each key by the shortest end of its path that no other key ends with."""
    parts = {k: [p for p in re.split(r"[./]", k) if p] or [k] for k in keys}
    out = {}
    for key, mine in parts.items():
        for n in range(1, len(mine) + 1):
            end = mine[-n:]
            if not any(other != key and theirs[-n:] == end for other, theirs in parts.items()):
                break
        out[key] = ".".join(end)
    return out


def label(values: Mapping[str, Any], keys: Iterable[str], sep: str = " ") -> str:
    """``dropout=0.25``: the keys' values, each key by its short name."""
    keys = list(keys)
    short = short_keys(keys)
    return sep.join(f"{short[k]}={values.get(k, '')}" for k in keys)


def swept_keys(specs: Iterable[str]) -> list[str]:
    """The keys that overrides such as ``a=1,2``, ``b=range(3)``, ``c=interval(0,1)`` sweep,
    in the order given, each once. Overrides Hydra cannot parse are skipped."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    keys: list[str] = []
    for spec in specs:
        try:
            (override,) = parser.parse_overrides([str(spec)])
        except Exception:  # noqa: BLE001 - not ours to judge; the sweeper reports it
            continue
        if override.is_sweep_override() and override.key_or_group not in keys:
            keys.append(override.key_or_group)
    return keys


def study_specs(
    sweeper_params: Mapping[str, Any] | None, sweep_dir: str | Path | None
) -> list[str]:
    """What a sweep was asked to vary: the config's ``hydra.sweeper.params`` and the sweep's
    command line (Hydra's basic sweeper saves it in ``<sweep dir>/multirun.yaml``)."""
    specs = [f"{k}={v}" for k, v in (sweeper_params or {}).items()]
    saved = Path(sweep_dir) / "multirun.yaml" if sweep_dir else None
    if saved is not None and saved.is_file():
        stat = saved.stat()
        specs += _saved_overrides(str(saved), stat.st_size, stat.st_mtime_ns)
    return specs


# ``${cnnlab_arm:}`` is resolved ~17 times per job (every resolve of the whole config), and
# reading multirun.yaml (the whole config) was ~1/3 of a one-batch run's fixed cost
# (experiments/benchmark/README.md): parsed once per file version
@functools.lru_cache(maxsize=8)
def _saved_overrides(path: str, size: int, mtime_ns: int) -> list[str]:
    from omegaconf import OmegaConf

    try:
        return [str(o) for o in OmegaConf.load(path).hydra.overrides.task]
    except Exception:  # noqa: BLE001 - an unreadable file names no arm
        return []


def arm_of(job_overrides: Iterable[str], specs: Iterable[str]) -> str | None:
    """This job's arm label from its overrides and the sweep's specs; None if only seeds vary."""
    keys = [k for k in swept_keys(specs) if k not in SEED_KEYS]
    return label(as_dict(job_overrides), keys) if keys else None


def run_name(arm: str | None, seed: Any, fallback: str, multirun: bool) -> str:
    """``dropout=0.25 seed=2``; a multirun with no arm keys ``mycnn seed=2``; a single run
    the fallback (the net's name) unless it was given an arm."""
    if arm:
        return f"{arm} seed={seed}"
    return f"{fallback} seed={seed}" if multirun else str(fallback)


def dirname(name: str) -> str:
    """A run name as a directory name: separators become ``,``; any other character outside
    letters, digits and ``._=+-`` becomes ``-`` and a hash of the name keeps it unique."""
    safe = "".join(c if _PATH_SAFE.fullmatch(c) else "-" for c in name).replace(" ", ",")
    if safe != name.replace(" ", ",") or "," in name or len(safe) > _MAX_DIRNAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:6]
        safe = f"{safe[:_MAX_DIRNAME]}-{digest}"
    return safe or "run"


def new_run_id(name: str) -> str:
    """A fresh W&B run id that starts with the run's name, so W&B's own folder
    (``offline-run-<time>-<id>``, what ``wandb leet`` lists) says which run it is:
    ``dropout=0.25 seed=2`` → ``dropout-0p25_seed-2-3f9a1c`` (W&B ids: letters, digits,
    ``-``, ``_``; at most 64)."""
    slug = name.replace("=", "-").replace(" ", "_").replace(".", "p")
    slug = re.sub(r"-{2,}", "-", _ID_UNSAFE.sub("-", slug)).strip("-_")[:50]
    return f"{slug}-{secrets.token_hex(3)}" if slug else secrets.token_hex(4)


def with_arm_tag(tags: Iterable[str] | None, arm: str | None) -> list[str]:
    """The run's tags plus its arm label (W&B's filter finds an arm by it)."""
    out = [str(t) for t in (tags or [])]
    # a study's own tag for the key may say it already (batchnorm=False for batchnorm=false)
    if arm and arm.lower() not in {t.lower() for t in out} and len(arm) <= W_AND_B_TAG_MAX:
        out.append(arm)
    return out


# -- inside a Hydra job (the config's resolvers) -------------------------------------------


def _hydra():
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return hc if hc.get("mode") == RunMode.MULTIRUN else None


def job_arm() -> str | None:
    """``${cnnlab_arm:}``: this job's arm in a multirun, None for a single run."""
    hc = _hydra()
    if hc is None:
        return None
    from omegaconf import OmegaConf

    params = hc.sweeper.get("params")
    params = OmegaConf.to_container(params) if params is not None else None
    return _arm_of(tuple(hc.overrides.task), tuple(study_specs(cast(Any, params), hc.sweep.dir)))


@functools.lru_cache(maxsize=64)  # a pure function of its arguments, asked many times a job
def _arm_of(job_overrides: tuple[str, ...], specs: tuple[str, ...]) -> str | None:
    return arm_of(job_overrides, specs)


def job_run_name(arm: str | None, seed: Any, fallback: str) -> str:
    """``${cnnlab_run_name:${arm},${seed},${run_name}}``: the W&B name of this run."""
    return run_name(arm, seed, fallback, multirun=_hydra() is not None)


def study_dir(single_run: str) -> str:
    """``${cnnlab_study_dir:${paths.log_dir}}``: the sweep dir of a multirun (one W&B folder
    for the whole study), else the given directory."""
    hc = _hydra()
    return str(hc.sweep.dir) if hc is not None else str(single_run)
