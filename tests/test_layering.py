"""The package's layers import one way (CONTRIBUTING.md, "Layers"): a module imports only
from its own package or from a layer below it, never from above or from a sibling of its
own layer. Every import counts, at the top of a module or inside a function."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
    import tomli as tomllib

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

# lowest first; the modules of the bottom layer (cnnlab/*.py and compat/) import each other
LAYERS = [
    {
        "cnnlab",  # the package itself: cnnlab/__init__.py
        "checkpoints",
        "console",
        "cpu_malloc",
        "errors",
        "files",
        "plots",
        "results",
        "seeding",
        "compat",
    },
    {"nets", "data"},
    {"training"},
    {"config"},
    {"launch"},
    {"run"},
    {"search", "analysis"},
    {"cli", "hydra_plugins"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _unit(dotted: str) -> str | None:
    """The layer unit of a cnnlab module: its subpackage or top-level module; None for a
    module that is not cnnlab's."""
    parts = dotted.split(".")
    if parts[0] == "hydra_plugins" and len(parts) > 1 and parts[1].startswith("cnnlab"):
        return "hydra_plugins"
    if parts[0] != "cnnlab":
        return None
    return parts[1] if len(parts) > 1 else "cnnlab"


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[0] == "hydra_plugins" and not parts[1].startswith("cnnlab"):
            continue
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def _imported(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved; ``from a import
    b`` counts as ``a.b`` (b may be a submodule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _against_layers(module: str, path: Path) -> list[str]:
    mine = _unit(module)
    bad = []
    for line, name in _imported(module, path):
        theirs = _unit(name)
        if theirs is None or theirs == mine:
            continue
        if theirs not in RANK:  # `from cnnlab import __version__`: the package itself
            theirs = "cnnlab"
        if RANK[mine] == RANK[theirs] == 0 or RANK[theirs] < RANK[mine]:
            continue
        bad.append(f"{path.name}:{line} {module} ({mine}) imports {name} ({theirs})")
    return bad


def test_every_package_has_a_layer():
    units = {_unit(module) for module, _ in _modules()}
    assert units - set(RANK) == set(), "add the new package to LAYERS and CONTRIBUTING.md"


def test_imports_go_down_the_layers():
    bad = [line for module, path in _modules() for line in _against_layers(module, path)]
    assert bad == [], "imports against the layering:\n" + "\n".join(bad)


def test_the_check_sees_an_import_against_the_layers(tmp_path):
    """An import up the layers, or across to a sibling of the same layer, is reported,
    also from inside a function."""
    path = tmp_path / "runner.py"
    path.write_text(
        "from cnnlab.config import schema\n"
        "def f():\n"
        "    from cnnlab.search.pruning import callback_for\n"
        "    from ..analysis import load\n"
    )
    bad = _against_layers("cnnlab.run.runner", path)
    assert len(bad) == 2 and "cnnlab.search.pruning" in bad[0] and "analysis" in bad[1], bad
    path.write_text("from cnnlab.nets import mycnn\n")
    assert len(_against_layers("cnnlab.data.datamodule", path)) == 1  # siblings


# -- console entry points: every one in cnnlab/cli/, importable, its function there --------


def _scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def test_there_are_console_scripts():
    assert "cnnlab-train" in _scripts() and "cnnlab-search-report" in _scripts()


@pytest.mark.parametrize("command", sorted(_scripts()))
def test_every_console_script_lives_in_cli(command):
    target = _scripts()[command]
    module, _, function = target.partition(":")
    assert module.startswith("cnnlab.cli."), f"{command} = {target}: entry points go in cnnlab/cli/"
    assert callable(getattr(importlib.import_module(module), function)), target
