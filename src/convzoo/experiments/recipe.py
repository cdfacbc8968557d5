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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .analyses import ANALYSES

SCALES = ("smoke", "full")
EXPERIMENTS_ENV = "CONVZOO_EXPERIMENTS"
RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
_RUN_KEYS = {"name", "model", "spec", "model_kwargs", "train", "role", "published", "paper_error", "note", "depth"}
_SCALE_RUN_KEYS = {"model", "spec", "model_kwargs", "train"}
@dataclass
class RunSpec:
    """One network of a recipe, at one scale (the scale's overrides already applied)."""

    name: str
    model: str | None
    spec: str | None
    model_kwargs: dict[str, Any]
    train: dict[str, Any]
    role: str | None = None
    published: float | None = None
    paper_error: float | None = None
    depth: int | None = None
    note: str | None = None


@dataclass
class Recipe:
    """A parsed experiment recipe."""

    name: str
    path: Path
    title: str
    claim: str
    analysis: str
    data: str
    train: dict[str, Any]
    runs: list[dict[str, Any]]
    scales: dict[str, dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict)

    def seeds(self, scale: str) -> list[int]:
        """Seeds of `scale` (default [0])."""
        seeds = self.scales[scale].get("seeds", [0])
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
            raise ConfigError(f"{self.path}: [{scale}] seeds must be a non-empty list of integers")
        return seeds

    def eval_options(self, scale: str) -> dict[str, Any]:
        """The `[SCALE.eval]` table (scales experiment), over the recipe's `[eval]`."""
        out = dict(self.raw.get("eval", {}))
        out.update(self.scales[scale].get("eval", {}))
        return out

    def runs_at(self, scale: str) -> list[RunSpec]:
        """The runs at `scale`, with the scale's general and per-run overrides applied."""
        if scale not in self.scales:
            raise ConfigError(f"experiment {self.name!r} has no [{scale}] scale; it has {', '.join(self.scales)}")
        sc = self.scales[scale]
        per_run = sc.get("runs", {})
        names = [r["name"] for r in self.runs]
        unknown = [k for k in per_run if k not in names]
        if unknown:
            raise ConfigError(f"{self.path}: [{scale}.runs] names {unknown[0]!r}, which is not a run; runs: {', '.join(names)}")
        out = []
        for r in self.runs:
            over = per_run.get(r["name"], {})
            bad = set(over) - _SCALE_RUN_KEYS
            if bad:
                raise ConfigError(f"{self.path}: [{scale}.runs.{r['name']}] has unknown key(s) {', '.join(sorted(bad))}; "
                                  f"expected {', '.join(sorted(_SCALE_RUN_KEYS))}")
            model, spec = r.get("model"), r.get("spec")
            if "model" in over or "spec" in over:
                model, spec = over.get("model"), over.get("spec")
            train = {**self.train, **dict(sc.get("train", {})), **dict(r.get("train", {})), **dict(over.get("train", {}))}
            kwargs = {**dict(r.get("model_kwargs", {})), **dict(over.get("model_kwargs", {}))}
            out.append(RunSpec(name=r["name"], model=model, spec=spec, model_kwargs=kwargs, train=train,
                               role=r.get("role"), published=r.get("published"), paper_error=r.get("paper_error"),
                               depth=r.get("depth"), note=r.get("note")))
        return out


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
