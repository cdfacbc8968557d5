"""The recipe's data: `Recipe` (a parsed experiment recipe) and `RunSpec` (one of its runs at one
scale), with the scales and the keys a run may carry.

A leaf module: `analyses` (which judges a recipe's rows) and `recipe` (which reads and validates a
recipe file against the analyses' table) both import it, so neither imports the other's
dependents and there is no circle between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

SCALES = ("smoke", "full")
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
