"""config"""

from pathlib import Path


def conf_dir() -> str:
    """cnnlab's Hydra configs, shipped inside the package: src/cnnlab/conf links to the
    repo's conf/ (an editable install reads it there; the wheel carries a copy)."""
    return str((Path(__file__).resolve().parent.parent / "conf").resolve())
