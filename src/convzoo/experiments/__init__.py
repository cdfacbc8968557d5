"""Experiments: TOML recipes that reproduce the lecture's claims, run with one command.

One job per module:

- `schema`: the recipe's data (`Recipe`, `RunSpec`, `SCALES`), a leaf both `analyses` and
  `recipe` import;
- `recipe`: reading a recipe file: where recipes are found (the shipped ones are package data
  in `recipes/`), `load_recipe` (validated against the analyses' table), `parse_overrides`,
  `describe`;
- `runner`: `plan` (every run's TrainConfig, checked before anything trains),
  `run_experiment` (train, reuse finished runs, evaluate the test protocols, analyse,
  report) and `evaluate_protocols`;
- `aggregate`: `summarise`, one row per run from its run folders (mean and spread over seeds);
- `analyses`: `ANALYSERS`, one table of analysers with one signature
  `(rows, recipe, scale, evaluations) -> (verdicts, tables)`;
- `reports`: `write_reports`, report.md with figures/ and a self-contained report.html.

`run_experiment(name, scale, out)` writes `results.json`, `report.md` and `report.html` to `out`.
"""

from __future__ import annotations

from .aggregate import summarise
from .analyses import (
    ANALYSERS,
    ANALYSES,
    Analysis,
    Tables,
    Verdicts,
    analyse_compare,
    analyse_degradation,
    analyse_densenet_edge,
    analyse_lrn,
    analyse_residual_units,
    analyse_scales,
    analyse_zoo,
)
from .recipe import (
    EXPERIMENTS_ENV,
    RECIPES_DIR,
    SCALES,
    Recipe,
    RunSpec,
    describe,
    experiments_dir,
    find_recipe,
    list_experiments,
    load_recipe,
    parse_overrides,
)
from .reports import write_reports
from .runner import ExperimentResult, evaluate_protocols, plan, run_experiment

__all__ = [
    "ANALYSERS",
    "ANALYSES",
    "EXPERIMENTS_ENV",
    "RECIPES_DIR",
    "SCALES",
    "Analysis",
    "ExperimentResult",
    "Recipe",
    "RunSpec",
    "Tables",
    "Verdicts",
    "analyse_compare",
    "analyse_degradation",
    "analyse_densenet_edge",
    "analyse_lrn",
    "analyse_residual_units",
    "analyse_scales",
    "analyse_zoo",
    "describe",
    "evaluate_protocols",
    "experiments_dir",
    "find_recipe",
    "list_experiments",
    "load_recipe",
    "parse_overrides",
    "plan",
    "run_experiment",
    "summarise",
    "write_reports",
]
