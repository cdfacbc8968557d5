"""The wheel carries what convzoo needs at run time, and convzoo runs from it.

One wheel is built (`pip wheel . --no-deps`) for the module. It must hold every file of the
source package: the modules, the shipped weights and their recipes, the experiments'
recipes, the explorer's page, models_table.json and py.typed. Unpacked on its own (no
source checkout on the path, another working folder), `convzoo experiment --list` lists
every shipped experiment and reads the recipes from the unpacked package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "convzoo"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)]
    if _has_build_backend():  # the environment's setuptools: no isolated build env to install (minutes here)
        cmd.append("--no-build-isolation")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("convzoo-*.whl")
    return built


def _has_build_backend() -> bool:
    """Whether this environment has the setuptools pyproject.toml asks for (>= 68)."""
    try:
        import setuptools
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 68


def _source_files() -> set[str]:
    """Every file of the source package, as the wheel names it (no caches, no hidden files)."""
    return {p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
            and p.suffix != ".pyc"}  # fmt: skip


def test_wheel_carries_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {f"convzoo/experiments/recipes/{p.name}" for p in (PACKAGE / "experiments" / "recipes").glob("*.toml")}
    weights = {p.relative_to(PACKAGE.parent).as_posix() for p in (PACKAGE / "weights").rglob("*")
               if p.is_file() and p.suffix in (".safetensors", ".json", ".toml")}  # fmt: skip
    page = {p.relative_to(PACKAGE.parent).as_posix() for p in (PACKAGE / "serve" / "static").rglob("*") if p.is_file()}
    for what, files in [("experiment recipes", recipes), ("shipped weights", weights), ("explorer page", page)]:
        assert files, f"no {what} in the source tree"
        assert files <= names, f"{what} missing from the wheel: {sorted(files - names)}"
    assert {"convzoo/models_table.json", "convzoo/py.typed"} <= names
    source = _source_files()
    missing = source - names
    assert not missing, f"files of the source package missing from the wheel (package-data?): {sorted(missing)}"
    stale = {n for n in names if n.startswith("convzoo/") and not n.endswith("/")} - source
    assert not stale, f"files in the wheel that the source package no longer has (a stale build/?): {sorted(stale)}"


def test_experiments_run_from_the_unpacked_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "work"  # no experiments/ folder, no source checkout here
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CONVZOO_EXPERIMENTS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)
    script = (
        "import json, sys, convzoo\n"
        "from convzoo.cli import main\n"
        "from convzoo.experiments import load_recipe\n"
        "print(json.dumps({'package': convzoo.__file__, 'recipe': str(load_recipe('degradation').path)}))\n"
        "sys.exit(main(['experiment', '--list']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, _, listed = proc.stdout.partition("\n")
    where = json.loads(first)
    site = site.resolve()
    assert Path(where["package"]).resolve().is_relative_to(site), where  # the unpacked wheel, not the checkout
    assert Path(where["recipe"]).resolve().is_relative_to(site / "convzoo" / "experiments" / "recipes"), where
    shipped = sorted(p.stem for p in (PACKAGE / "experiments" / "recipes").glob("*.toml"))
    assert shipped
    listed_names = [line.split()[0] for line in listed.splitlines() if line and not line[0].isspace()]
    assert listed_names == shipped, listed
