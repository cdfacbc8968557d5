"""The recipe schema: a TOML file that names an experiment's runs and how to judge them.

    title = "..."                 # one line
    claim = "..."                 # the lecture's claim, in words
    analysis = "compare"          # a name of `analyses.ANALYSERS`
    data = "fashion-mnist"
    [train]                       # TrainConfig fields shared by every run, at both scales
    [[runs]]                      # one table per network
    name = "lenet5"               # the run's label (folder: runs/NAME-sSEED)
    model = "lenet5"              # a registry name ...
    spec = "16c3w1s1p ..."        # ... or the compact notation (convzoo.from_spec)
    model_kwargs = {...}          # builder options (e.g. unit = "full_preact")
    train = {...}                 # this run's TrainConfig overrides
    role = "..."; published = 94.9; paper_error = 6.61   # used by the analysis
    [smoke] / [full]              # a scale: seeds = [...], train = {...},
    [smoke.runs.NAME]             # per-run overrides at this scale (model, spec, model_kwargs, train)
    [smoke.eval]                  # test protocols (the scales analysis), over the recipe's [eval]

The recipes shipped with convzoo are package data in `recipes/`; `$CONVZOO_EXPERIMENTS`
points to another folder, and any `.toml` path is read as a recipe.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .analyses import ANALYSES
from .schema import _RUN_KEYS, SCALES, Recipe, RunSpec

__all__ = ["SCALES", "Recipe", "RunSpec", "experiments_dir", "list_experiments", "find_recipe", "load_recipe"]

EXPERIMENTS_ENV = "CONVZOO_EXPERIMENTS"
RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


def experiments_dir() -> Path | None:
    """Where the recipes are: $CONVZOO_EXPERIMENTS when set, else the package's `recipes/`."""
    env = os.environ.get(EXPERIMENTS_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(RECIPES_DIR)
    for c in candidates:
        if c.is_dir() and any(c.glob("*.toml")):
            return c
    return None


def list_experiments() -> list[str]:
    """Names of the recipes found by `experiments_dir()`."""
    d = experiments_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d else []


def find_recipe(name: str) -> Path:
    """The recipe file of `name` (or `name` itself when it is a .toml path)."""
    p = Path(name)
    if p.suffix == ".toml":
        if not p.is_file():
            raise ConfigError(f"recipe file {name!r} does not exist")
        return p
    d = experiments_dir()
    if d is not None and (d / f"{name}.toml").is_file():
        return d / f"{name}.toml"
    known = list_experiments()
    import difflib

    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else (f"; known: {', '.join(known)}" if known else
                                                                f"; set ${EXPERIMENTS_ENV} to the recipes' folder")
    raise ConfigError(f"unknown experiment {name!r}{hint}")


def load_recipe(name: str) -> Recipe:
    """Read and check a recipe; every mistake is a `ConfigError` naming the file and key."""
    import tomllib

    path = find_recipe(name)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"recipe {str(path)!r} is not valid TOML: {err}") from None
    allowed = {"title", "claim", "analysis", "data", "train", "runs", "eval", *SCALES}
    extra = set(raw) - allowed
    if extra:
        raise ConfigError(f"{path}: unknown top-level key(s) {', '.join(sorted(extra))}; expected {', '.join(sorted(allowed))}")
    analysis = raw.get("analysis", "compare")
    if analysis not in ANALYSES:
        raise ConfigError(f"{path}: analysis must be one of {', '.join(ANALYSES)}, got {analysis!r}")
    runs = raw.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{path}: a recipe needs at least one [[runs]] table")
    seen = set()
    for r in runs:
        if "name" not in r:
            raise ConfigError(f"{path}: every [[runs]] table needs a name")
        bad = set(r) - _RUN_KEYS
        if bad:
            raise ConfigError(f"{path}: run {r['name']!r} has unknown key(s) {', '.join(sorted(bad))}")
        if (r.get("model") is None) == (r.get("spec") is None):
            raise ConfigError(f"{path}: run {r['name']!r} needs exactly one of model or spec")
        if r["name"] in seen:
            raise ConfigError(f"{path}: two runs are named {r['name']!r}")
        seen.add(r["name"])
    scales = {s: raw[s] for s in SCALES if s in raw}
    if not scales:
        raise ConfigError(f"{path}: a recipe needs a [smoke] and a [full] scale")
    return Recipe(name=path.stem, path=path, title=raw.get("title", path.stem), claim=raw.get("claim", ""),
                  analysis=analysis, data=raw.get("data", "fashion-mnist"), train=dict(raw.get("train", {})),
                  runs=runs, scales=scales, raw=raw)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings as TrainConfig overrides; VALUE is read as TOML (3, 0.1, true, "x")
    and taken as a plain string when it is not valid TOML (amp=bf16)."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example epochs=3")
        try:
            out[key] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = value
    return out


def describe(recipe: Recipe) -> dict[str, Any]:
    """A recipe in brief for `convzoo experiment --list`: title, analysis, runs per scale."""
    out = {"name": recipe.name, "title": recipe.title, "analysis": recipe.analysis, "scales": {}}
    for s in recipe.scales:
        runs = recipe.runs_at(s)
        train = copy.deepcopy(runs[0].train) if runs else {}
        out["scales"][s] = {"runs": [r.model or "spec" for r in runs], "seeds": recipe.seeds(s),
                            "epochs": train.get("epochs")}
    return out
