"""The runner: plan an experiment's training runs, train them, evaluate, analyse, report.

`plan` checks every run's configuration before anything is trained; `run_experiment`
trains every run with `convzoo.train.train` (reusing a finished run folder made with the
same configuration), aggregates the rows (`aggregate.summarise`), evaluates the trained
models under the recipe's test protocols when its analysis asks for that
(`evaluate_protocols`), judges the claim with the analysis's row of `analyses.ANALYSERS`,
then writes `results.json`, `report.md` and a self-contained `report.html` to `out`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from .aggregate import summarise
from .analyses import ANALYSERS, Evaluations, Row
from .recipe import SCALES, Recipe, RunSpec, load_recipe
from .reports import write_reports


def plan(recipe: Recipe, scale: str, out: Path, overrides: dict[str, Any] | None = None) -> list[tuple[RunSpec, int, Any]]:
    """(run, seed, TrainConfig) for every training run, checked before anything is trained.

    `overrides` (TrainConfig fields) apply to every run, after the recipe's own values."""
    from ..registry import model_info
    from ..train import TrainConfig

    jobs = []
    for run in recipe.runs_at(scale):
        if run.model is not None:
            model_info(run.model)  # an unknown name fails now, with suggestions
        else:
            from ..notation import parse

            parse(run.spec)  # malformed notation fails now, with the position of the fault
        for seed in recipe.seeds(scale):
            values = {"data": recipe.data, **run.train, **(overrides or {})}
            values.update(model=run.model or f"spec:{run.name}", model_kwargs=dict(run.model_kwargs), seed=seed,
                          out=str(out / "runs"), name=f"{run.name}-s{seed}", overwrite=True)
            cfg = TrainConfig.from_dict(values, source=f"{recipe.path} (run {run.name}, scale {scale})").validate()
            jobs.append((run, seed, cfg))
    return jobs


def _build_spec_model(run: RunSpec, cfg: Any) -> Any:
    from ..data import dataset_info
    from ..notation import from_spec

    info = dataset_info(cfg.data, cfg.data_dir)
    size = cfg.input_size or info.get("size") or 32
    model = from_spec(run.spec, in_channels=int(info["channels"]), input_size=int(size))
    model.zoo_name = f"spec:{run.name}"
    return model


def _same_config(run_dir: Path, cfg: Any) -> bool:
    """A finished run folder made with exactly this configuration (so it can be reused)."""
    try:
        old = json.loads((run_dir / "config.json").read_text())
        done = json.loads((run_dir / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    new = json.loads(json.dumps(cfg.to_dict(), default=str))
    return old == new and done.get("test_top1") is not None



def evaluate_protocols(run: RunSpec, model: Any, cfg: Any, options: dict[str, Any]) -> list[Row]:
    """Test error of one trained run under each test protocol of `options` (`convzoo.evaluate`).

    Each protocol is a table of `evaluate` options (`crops` 1 or 10, `scales`, `dense`,
    `flip`) plus a `name`; `scales = "multi"` takes the run's role's list from
    `options["scales"]` (VGG section 4.2: Q around the training scale, or spanning the
    jittering range). Without scales, a run is tested at its training recipe's own test
    scale (the data layer's: Q = S for a fixed scale, the middle of [Smin, Smax] for jittering).
    """
    from ..data import load_dataset, make_augment
    from ..evaluate import evaluate
    from ..train.runtime import resolve_device

    device = resolve_device(cfg.device)  # the training device: a GPU run is evaluated on the GPU
    test = load_dataset(cfg.data, "test", cfg.data_dir)
    if cfg.subset:
        test = test.subset(cfg.subset)
    if options.get("images"):  # fewer test images for the many-view protocols of a smoke run
        test = test.subset(int(options["images"]))
    size = int(cfg.input_size or test.images.shape[-1])
    aug = make_augment(cfg.data, size, recipe=cfg.augment, train=False, channels=int(test.images.shape[1]))
    rows = []
    for proto in options.get("protocols") or [{"name": "1 crop"}]:
        kw = {k: v for k, v in proto.items() if k != "name"}
        if kw.get("scales") == "multi":
            by_role = options.get("scales", {})
            if run.role not in by_role:
                raise ConfigError(f"eval protocol {proto.get('name')!r} asks for multi-scale testing, but the recipe's "
                                  f"eval.scales has no list for role {run.role!r}")
            kw["scales"] = by_role[run.role]
        res = evaluate(model, test, input_size=size, augment=aug, batch_size=cfg.eval_batch_size, device=device,
                       amp=cfg.amp != "none", **kw)
        rows.append({"protocol": proto.get("name", str(kw)), "test_error": float(res["top1_error"]),
                     "top5_error": float(res["top5_error"]), "views": res.get("views"), "scales": res.get("scales")})
    return rows



@dataclass
class ExperimentResult:
    """What `run_experiment` produced."""

    name: str
    scale: str
    out: Path
    rows: list[dict[str, Any]]
    verdicts: list[str]
    wall_seconds: float
    report_md: Path
    report_html: Path


def run_experiment(
    name: str,
    scale: str = "smoke",
    out: str | Path | None = None,
    *,
    progress: bool = True,
    reuse: bool = True,
    log: Callable[[str], None] | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
) -> ExperimentResult:
    """Train every run of recipe `name` at `scale`, then write results.json and the reports.

    `out` defaults to `experiments-out/NAME-SCALE`. With `reuse`, a run folder that already
    holds a finished run with exactly the same configuration is not trained again.
    `overrides` (TrainConfig fields, e.g. a reduced `epochs` or `amp="bf16"`) apply to every
    run and `seeds` replaces the scale's seeds; both are stated in the reports.
    """
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    recipe = load_recipe(name)
    if seeds:
        recipe.scales[scale] = {**recipe.scales[scale], "seeds": list(seeds)}
    out_dir = Path(out) if out is not None else Path("experiments-out") / f"{recipe.name}-{scale}"
    out_dir.mkdir(parents=True, exist_ok=True)
    say = log or (lambda _s: None)
    jobs = plan(recipe, scale, out_dir, overrides)
    from ..train import train

    t0 = time.perf_counter()
    done: dict[str, list[Path]] = {}
    for i, (run, seed, cfg) in enumerate(jobs, 1):
        run_dir = cfg.run_dir()
        if reuse and _same_config(run_dir, cfg):
            say(f"[{i}/{len(jobs)}] {run.name} seed {seed}: reusing the finished run in {run_dir}")
            done.setdefault(run.name, []).append(run_dir)
            continue
        say(f"[{i}/{len(jobs)}] {run.name} seed {seed}: training {run.model or 'spec'} -> {run_dir}")
        model = _build_spec_model(run, cfg) if run.spec else None
        path = train(cfg, progress=progress, model=model)
        done.setdefault(run.name, []).append(Path(path))
    rows = summarise(recipe.runs_at(scale), done)
    analysis = ANALYSERS[recipe.analysis]
    evals = _evaluate_first_seeds(recipe, scale, jobs, done) if analysis.evaluates else {}
    verdicts, tables = analysis.analyse(rows, recipe, scale, evals)
    wall = time.perf_counter() - t0
    results = {
        "experiment": recipe.name, "title": recipe.title, "claim": recipe.claim, "scale": scale,
        "data": recipe.data, "seeds": recipe.seeds(scale), "rows": rows, "verdicts": verdicts,
        "evaluations": evals, "wall_seconds": wall, "overrides": overrides or {},
        "runs": {k: [str(p) for p in v] for k, v in done.items()},
        "recipe": str(recipe.path),
    }  # fmt: skip
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    md, html = write_reports(recipe, scale, out_dir, rows, verdicts, tables, done, wall, overrides or {})
    return ExperimentResult(recipe.name, scale, out_dir, rows, verdicts, wall, md, html)


def _evaluate_first_seeds(recipe: Recipe, scale: str, jobs: list[tuple[RunSpec, int, Any]],
                          done: dict[str, list[Path]]) -> Evaluations:  # fmt: skip
    """Every run's first-seed model under the recipe's test protocols (`[eval]`)."""
    opts = recipe.eval_options(scale)
    first = recipe.seeds(scale)[0]
    evals: Evaluations = {}
    for run, seed, cfg in jobs:
        if seed != first:
            continue
        model = _load_trained(run, done[run.name][0], cfg)
        evals[run.name] = evaluate_protocols(run, model, cfg, opts)
    return evals


def _load_trained(run: RunSpec, run_dir: Path, cfg: Any) -> Any:
    """The trained model of a run folder (spec models are rebuilt from their text)."""
    from ..train import load_checkpoint, read_checkpoint

    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if run.spec is None:
        model, _ = load_checkpoint(ckpt_path)
        return model
    model = _build_spec_model(run, cfg)
    ckpt = read_checkpoint(ckpt_path)
    state = ckpt["ema"] if isinstance(ckpt.get("ema"), dict) and ckpt["ema"] else ckpt["model"]
    model.load_state_dict(state)
    return model.eval()

