"""Experiments: TOML recipes that reproduce the lecture's claims, run with one command.

A recipe (`experiments/NAME.toml`) names its runs and how to judge them:

    title = "..."                 # one line
    claim = "..."                 # the lecture's claim, in words
    analysis = "compare"          # compare | degradation | lrn | residual_units | densenet_edge | zoo | scales
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
    [smoke.eval]                  # scales only: test scales and crops

`run_experiment(name, scale, out)` trains every run with `convzoo.train.train`, then writes
`results.json`, `report.md` and a self-contained `report.html` (tables and plots) to `out`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import ConfigError

SCALES = ("smoke", "full")
ANALYSES = ("compare", "degradation", "lrn", "residual_units", "densenet_edge", "zoo", "scales")
EXPERIMENTS_ENV = "CONVZOO_EXPERIMENTS"
_RUN_KEYS = {"name", "model", "spec", "model_kwargs", "train", "role", "published", "paper_error", "note", "depth"}
_SCALE_RUN_KEYS = {"model", "spec", "model_kwargs", "train"}


# -- recipes -----------------------------------------------------------------------------
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
    """Where the recipes are: $CONVZOO_EXPERIMENTS, the source checkout's experiments/, or ./experiments."""
    env = os.environ.get(EXPERIMENTS_ENV)
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "experiments", Path.cwd() / "experiments"]
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


def plan(recipe: Recipe, scale: str, out: Path, overrides: dict[str, Any] | None = None) -> list[tuple[RunSpec, int, Any]]:
    """(run, seed, TrainConfig) for every training run, checked before anything is trained.

    `overrides` (TrainConfig fields) apply to every run, after the recipe's own values."""
    from .registry import model_info
    from .train import TrainConfig

    jobs = []
    for run in recipe.runs_at(scale):
        if run.model is not None:
            model_info(run.model)  # an unknown name fails now, with suggestions
        else:
            from .notation import parse

            parse(run.spec)  # malformed notation fails now, with the position of the fault
        for seed in recipe.seeds(scale):
            values = {"data": recipe.data, **run.train, **(overrides or {})}
            values.update(model=run.model or f"spec:{run.name}", model_kwargs=dict(run.model_kwargs), seed=seed,
                          out=str(out / "runs"), name=f"{run.name}-s{seed}", overwrite=True)
            cfg = TrainConfig.from_dict(values, source=f"{recipe.path} (run {run.name}, scale {scale})").validate()
            jobs.append((run, seed, cfg))
    return jobs


def _build_spec_model(run: RunSpec, cfg: Any) -> Any:
    from .data import dataset_info
    from .notation import from_spec

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


# -- results ---------------------------------------------------------------------------
def _last_epoch(run_dir: Path) -> dict[str, Any]:
    from .viz.curves import read_run

    rec = read_run(run_dir)
    return rec.epochs[-1] if rec.epochs else {}


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def summarise(runs: list[RunSpec], done: dict[str, list[Path]]) -> list[dict[str, Any]]:
    """One row per run name: params, MACs, mean and spread of test/train error over seeds."""
    rows = []
    for run in runs:
        dirs = done.get(run.name, [])
        sums = [json.loads((d / "summary.json").read_text()) for d in dirs]
        lasts = [_last_epoch(d) for d in dirs]
        test_err = [100.0 - s["test_top1"] for s in sums if s.get("test_top1") is not None]
        train_err = [100.0 - e["train_top1"] for e in lasts if e.get("train_top1") is not None]
        te, te_sd = _mean_std(test_err)
        tr, tr_sd = _mean_std(train_err)
        rows.append({
            "run": run.name,
            "model": run.model or "spec",
            "role": run.role,
            "params": sums[0].get("params") if sums else None,
            "macs": sums[0].get("macs") if sums else None,
            "seeds": len(sums),
            "test_error": te, "test_error_std": te_sd,
            "train_error": tr, "train_error_std": tr_sd,
            "test_top1": None if te is None else 100.0 - te,
            "test_top5": _mean_std([s.get("test_top5") for s in sums])[0],
            "epochs": sums[0].get("epochs_done", sums[0].get("epochs")) if sums else None,
            "wall_seconds": _mean_std([s.get("wall_seconds") for s in sums])[0],
            "images_per_second": _mean_std([s.get("images_per_second") for s in sums])[0],
            "published": run.published,
            "paper_error": run.paper_error,
            "depth": run.depth,
        })  # fmt: skip
    return rows


def _pm(mean: float | None, sd: float | None, n: int) -> str:
    if mean is None:
        return "–"
    return f"{mean:.2f} ± {sd:.2f}" if n > 1 and sd is not None else f"{mean:.2f}"


def _differs(a: dict[str, Any], b: dict[str, Any], key: str = "test_error") -> tuple[float, bool]:
    """(b - a, whether the gap exceeds the seeds' spread: |gap| > sd_a + sd_b, or any gap for one seed)."""
    gap = b[key] - a[key]
    spread = (a.get(f"{key}_std") or 0.0) + (b.get(f"{key}_std") or 0.0)
    return gap, abs(gap) > spread


# -- analyses: each returns (verdicts, extra tables) --------------------------------------
Verdicts = list[str]
Tables = list[tuple[str, list[dict[str, Any]], list[str]]]


def _by_role(rows: list[dict[str, Any]], role: str) -> dict[str, Any] | None:
    return next((r for r in rows if r.get("role") == role), None)


def analyse_compare(rows: list[dict[str, Any]], recipe: Recipe, scale: str) -> tuple[Verdicts, Tables]:
    ranked = sorted((r for r in rows if r["test_error"] is not None), key=lambda r: r["test_error"])
    if len(ranked) < 2:
        return [], []
    best, other = ranked[0], ranked[1]
    gap, real = _differs(best, other)
    return [f"{best['run']} has the lowest test error ({best['test_error']:.2f}%); {other['run']} is "
            f"{gap:.2f} points behind{_spread_words(best, other, real)}."], []


def _spread_words(a: dict[str, Any], b: dict[str, Any], real: bool) -> str:
    """', more than the spread over seeds' / ', within ...' / a note that one seed has no spread."""
    if min(a["seeds"], b["seeds"]) < 2:
        return " (one seed each: no spread measured, so no claim of significance)"
    return ", more than the spread over seeds" if real else ", within the spread over seeds"


def _name(row: dict[str, Any]) -> str:
    """A run's name as a verdict prints it: with the network actually trained when a scale
    replaced it (the smoke scale trains plain32 for the plain56 row, say)."""
    model = row.get("model")
    return row["run"] if model in (None, "spec", row["run"]) else f"{row['run']} (trained as {model})"


def analyse_degradation(rows: list[dict[str, Any]], recipe: Recipe, scale: str) -> tuple[Verdicts, Tables]:
    ps, pd = _by_role(rows, "plain_shallow"), _by_role(rows, "plain_deep")
    rs, rd = _by_role(rows, "residual_shallow"), _by_role(rows, "residual_deep")
    out: Verdicts = []
    if not all((ps, pd, rs, rd)):
        raise ConfigError(f"{recipe.path}: degradation needs runs with roles plain_shallow, plain_deep, "
                          "residual_shallow and residual_deep")
    plain_worse = pd["train_error"] > ps["train_error"]
    res_better = rd["test_error"] < rs["test_error"] and rd["train_error"] < rs["train_error"]
    out.append(f"Deeper plain net trains worse: {'yes' if plain_worse else 'no'} — final training error "
               f"{_name(pd)} {pd['train_error']:.2f}% vs {_name(ps)} {ps['train_error']:.2f}% "
               f"(test {pd['test_error']:.2f}% vs {ps['test_error']:.2f}%).")
    out.append(f"Deeper residual net does better: {'yes' if res_better else 'no'} — training error "
               f"{_name(rd)} {rd['train_error']:.2f}% vs {_name(rs)} {rs['train_error']:.2f}%, test "
               f"{rd['test_error']:.2f}% vs {rs['test_error']:.2f}%.")
    holds = plain_worse and res_better
    out.append(f"The lecture's claim (deeper plain worse, deeper residual better) "
               f"{'holds' if holds else 'does not hold'} in this run.")
    return out, []


def analyse_lrn(rows: list[dict[str, Any]], recipe: Recipe, scale: str) -> tuple[Verdicts, Tables]:
    base, lrn = _by_role(rows, "baseline"), _by_role(rows, "lrn")
    if not base or not lrn:
        raise ConfigError(f"{recipe.path}: lrn needs runs with roles baseline and lrn")
    gap, real = _differs(base, lrn)
    seeds = min(base["seeds"], lrn["seeds"])
    figures = (f"test error {base['run']} {base['test_error']:.2f}% vs {lrn['run']} {lrn['test_error']:.2f}% "
               f"({gap:+.2f} points)")
    if seeds < 2:
        verdict = (f"One seed only: {figures}; without a spread over seeds this cannot say whether LRN helps. "
                   "VGG's Table 3: A 29.6% vs A-LRN 29.7% top-1 error.")
    elif gap < 0 and real:
        verdict = f"LRN helps here: {figures}, more than the spread over seeds."
    elif gap > 0 and real:
        verdict = f"LRN hurts here: {figures}, more than the spread over seeds."
    else:
        verdict = (f"LRN makes no difference beyond the spread over seeds: {figures}; as VGG's Table 3 found "
                   "(A 29.6% vs A-LRN 29.7% top-1 error).")
    return [verdict], []


def analyse_residual_units(rows: list[dict[str, Any]], recipe: Recipe, scale: str) -> tuple[Verdicts, Tables]:
    done = [r for r in rows if r["test_error"] is not None]
    ours = [r["run"] for r in sorted(done, key=lambda r: r["test_error"])]
    with_paper = [r for r in done if r.get("paper_error") is not None]
    paper = [r["run"] for r in sorted(with_paper, key=lambda r: r["paper_error"])]
    table = [{"rank": i + 1, "ours": ours[i] if i < len(ours) else None, "paper (ResNet-110, CIFAR-10)": p}
             for i, p in enumerate(paper)]
    agree = sum(1 for a, b in zip(ours, paper) if a == b)
    best_ok = bool(ours) and bool(paper) and ours[0] == paper[0]
    # Kendall's tau between the two orders: +1 same order, -1 reversed
    tau = _kendall(ours, paper)
    return [f"Best unit here: {ours[0] if ours else '–'} (paper: {paper[0] if paper else '–'}); "
            f"{agree} of {len(paper)} ranks agree; Kendall's tau between the orders {tau:+.2f}; "
            f"the paper's best unit {'is' if best_ok else 'is not'} best here."], \
        [("Ranking of the units (lowest test error first)", table, ["rank", "ours", "paper (ResNet-110, CIFAR-10)"])]


def _kendall(a: list[str], b: list[str]) -> float:
    common = [x for x in a if x in b]
    n = len(common)
    if n < 2:
        return 0.0
    pa = {x: i for i, x in enumerate(a)}
    pb = {x: i for i, x in enumerate(b)}
    s = 0
    for i in range(n):
        for j in range(i + 1, n):
            x, y = common[i], common[j]
            s += 1 if (pa[x] - pa[y]) * (pb[x] - pb[y]) > 0 else -1
    return s / (n * (n - 1) / 2)


def analyse_densenet_edge(rows: list[dict[str, Any]], recipe: Recipe, scale: str) -> tuple[Verdicts, Tables]:
    dense = [r for r in rows if r.get("role") == "densenet" and r["test_error"] is not None]
    res = [r for r in rows if r.get("role") == "resnet" and r["test_error"] is not None]
    if not dense or not res:
        raise ConfigError(f"{recipe.path}: densenet_edge needs runs with roles densenet and resnet")
    out = []
    for d in dense:
        near = min(res, key=lambda r: abs(math.log(r["params"] / d["params"])))
        fewer = [r for r in res if r["params"] >= d["params"]]
        beaten = [r["run"] for r in fewer if d["test_error"] < r["test_error"]]
        out.append(f"{d['run']} ({d['params']:,} params, {d['macs'] or 0:,} MACs): test error {d['test_error']:.2f}% "
                   f"against {near['run']} ({near['params']:,} params) {near['test_error']:.2f}%; it beats "
                   f"{len(beaten)} of {len(fewer)} ResNets with at least as many parameters"
                   f"{' (' + ', '.join(beaten) + ')' if beaten else ''}.")
    return out, []


def analyse_zoo(rows: list[dict[str, Any]], recipe: Recipe, scale: str) -> tuple[Verdicts, Tables]:
    table = []
    for r in rows:
        table.append({"run": r["run"], "model": r["model"], "test top-1 (%)": r["test_top1"],
                      "published Fashion-MNIST (%)": r.get("published"),
                      "difference (points)": None if r.get("published") is None or r["test_top1"] is None
                      else r["test_top1"] - r["published"]})
    reached = [r["run"] for r in rows if r.get("published") is not None and r["test_top1"] is not None
               and r["test_top1"] >= r["published"]]
    with_pub = [r for r in rows if r.get("published") is not None]
    return [f"{len(reached)} of {len(with_pub)} models reach their published Fashion-MNIST accuracy"
            f"{' (' + ', '.join(reached) + ')' if reached else ''}; the published numbers come from the data set's "
            "benchmark table (Xiao et al. 2017 README), with other protocols."], \
        [("Against the published results", table, list(table[0].keys()) if table else [])]


# -- the scales experiment: test-time protocols on trained runs ---------------------------
def evaluate_protocols(run: RunSpec, model: Any, cfg: Any, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Test error of one trained run under each test protocol of `options` (`convzoo.evaluate`).

    Each protocol is a table of `evaluate` options (`crops` 1 or 10, `scales`, `dense`,
    `flip`) plus a `name`; `scales = "multi"` takes the run's role's list from
    `options["scales"]` (VGG section 4.2: Q around the training scale, or spanning the
    jittering range). Without scales, a run is tested at its training recipe's own test
    scale (the data layer's: Q = S for a fixed scale, the middle of [Smin, Smax] for jittering).
    """
    from .data import load_dataset, make_augment
    from .evaluate import evaluate
    from .train.loop import resolve_device

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


def analyse_scales(rows: list[dict[str, Any]], recipe: Recipe, scale: str,
                   evals: dict[str, list[dict[str, Any]]]) -> tuple[Verdicts, Tables]:
    table = []
    for run, protos in evals.items():
        for p in protos:
            table.append({"training": run, "test protocol": p["protocol"], "views": p.get("views"),
                          "test scales": ", ".join(str(q) for q in p.get("scales") or []),
                          "test error (%)": p["test_error"]})
    out = []
    fixed, jit = _by_role(rows, "fixed"), _by_role(rows, "jitter")
    if fixed and jit and fixed["test_error"] is not None and jit["test_error"] is not None:
        gap, real = _differs(fixed, jit)
        out.append(f"Scale jittering at training {'lowers' if gap < 0 else 'does not lower'} the test error "
                   f"({fixed['test_error']:.2f}% fixed vs {jit['test_error']:.2f}% jittered, each at its own "
                   f"test scale{_spread_words(fixed, jit, real)}). VGG Table 3: 25.6% jittered vs 27.0% fixed (D).")
    for run, protos in evals.items():
        if len(protos) < 2:
            continue
        single = protos[0]
        for p in protos[1:]:
            better = p["test_error"] < single["test_error"]
            out.append(f"{run}: '{p['protocol']}' {'lowers' if better else 'does not lower'} the error against "
                       f"'{single['protocol']}' ({p['test_error']:.2f}% vs {single['test_error']:.2f}%).")
    return out, [("Test protocols (first seed of each training run)", table,
                  ["training", "test protocol", "views", "test scales", "test error (%)"])]


ANALYSERS: dict[str, Callable[..., tuple[Verdicts, Tables]]] = {
    "compare": analyse_compare,
    "degradation": analyse_degradation,
    "lrn": analyse_lrn,
    "residual_units": analyse_residual_units,
    "densenet_edge": analyse_densenet_edge,
    "zoo": analyse_zoo,
}


# -- running -----------------------------------------------------------------------------
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
    from .train import train

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
    runs = recipe.runs_at(scale)
    rows = summarise(runs, done)
    evals: dict[str, list[dict[str, Any]]] = {}
    if recipe.analysis == "scales":
        opts = recipe.eval_options(scale)
        for run, seed, cfg in jobs:
            if seed != recipe.seeds(scale)[0]:
                continue
            run_dir = done[run.name][0]
            model = _load_trained(run, run_dir, cfg)
            evals[run.name] = evaluate_protocols(run, model, cfg, opts)
        verdicts, tables = analyse_scales(rows, recipe, scale, evals)
    else:
        verdicts, tables = ANALYSERS[recipe.analysis](rows, recipe, scale)
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


def _load_trained(run: RunSpec, run_dir: Path, cfg: Any) -> Any:
    """The trained model of a run folder (spec models are rebuilt from their text)."""
    from .train import load_checkpoint, read_checkpoint

    ckpt_path = run_dir / "checkpoints" / "last.pt"
    if run.spec is None:
        model, _ = load_checkpoint(ckpt_path)
        return model
    model = _build_spec_model(run, cfg)
    ckpt = read_checkpoint(ckpt_path)
    state = ckpt["ema"] if isinstance(ckpt.get("ema"), dict) and ckpt["ema"] else ckpt["model"]
    model.load_state_dict(state)
    return model.eval()


# -- reports -----------------------------------------------------------------------------
_MAIN_COLUMNS = ["run", "model", "params", "macs", "seeds", "epochs", "train error (%)", "test error (%)",
                 "images/s", "wall (s)"]


def _main_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        out.append({
            "run": r["run"], "model": r["model"], "params": r["params"], "macs": r["macs"], "seeds": r["seeds"],
            "epochs": r["epochs"],
            "train error (%)": _pm(r["train_error"], r["train_error_std"], r["seeds"]),
            "test error (%)": _pm(r["test_error"], r["test_error_std"], r["seeds"]),
            "images/s": None if r["images_per_second"] is None else round(r["images_per_second"]),
            "wall (s)": None if r["wall_seconds"] is None else round(r["wall_seconds"], 1),
        })  # fmt: skip
    return out


def _md_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    from .viz.html import _cell

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c))[0] for c in cols) + " |")
    return "\n".join(lines)


def write_reports(recipe: Recipe, scale: str, out: Path, rows: list[dict[str, Any]], verdicts: Verdicts,
                  tables: Tables, done: dict[str, list[Path]], wall: float,
                  overrides: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """report.md (tables, verdicts, links to figures/) and report.html (everything embedded)."""
    from .viz._common import save_figure
    from .viz.compare import Point, plot_compare
    from .viz.curves import plot_curves, read_run
    from .viz.html import HtmlReport

    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    figures: list[tuple[str, Any, str]] = []
    first = [read_run(paths[0], label=name) for name, paths in done.items() if paths]
    if first:
        figures.append(("curves.png", plot_curves(first, title=f"{recipe.name}: training (thin) and test (bold) error"),
                        "training (thin) and test (bold) error against epochs, first seed of each run"))
    if recipe.analysis == "degradation":
        # the ResNet paper's Figure 6 layout: plain nets in one panel, residual nets in the other
        roles = {r["run"]: r.get("role") or "" for r in rows}
        for kind in ("plain", "residual"):
            group = [rec for rec in first if roles.get(rec.label, "").startswith(kind)]
            if group:
                figures.append((f"curves-{kind}.png", plot_curves(group, title=f"{kind} networks"),
                                f"{kind} networks: training (thin) and test (bold) error"))
    pts = [Point(label=r["run"], params=float(r["params"]), macs=None if r["macs"] is None else float(r["macs"]),
                 top1=r["test_top1"], top1_std=r["test_error_std"] or 0.0, n=r["seeds"])
           for r in rows if r["params"] and r["test_top1"] is not None]
    if len(pts) >= 2:
        figures.append(("compare.png", plot_compare(points=pts, title=f"{recipe.name}: accuracy against size and cost"),
                        "test accuracy against parameters and MACs (mean over seeds, bars: standard deviation)"))
    for fname, fig, _ in figures:
        save_figure(fig, fig_dir / fname)

    seeds = recipe.seeds(scale)
    header = (f"scale {scale}, data {recipe.data}, seeds {seeds}, {sum(len(v) for v in done.values())} training runs, "
              f"{wall:.1f} s wall time")
    if overrides:
        header += "; overrides of the recipe: " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    hw = _hardware(done)
    if hw:
        header += f"; hardware: {hw}"
    note = ("Smoke scale: a pipeline check on a few dozen images; its numbers say nothing about the claim."
            if scale == "smoke" else "")
    main = _main_table(rows)

    md = [f"# {recipe.title}", "", f"Claim: {recipe.claim}", "", header, ""]
    if note:
        md += [f"> {note}", ""]
    md += ["## Results", "", _md_table(main, _MAIN_COLUMNS), "", "## Verdict", ""]
    md += [f"- {v}" for v in verdicts] or ["- (no verdict)"]
    for title, trows, cols in tables:
        md += ["", f"## {title}", "", _md_table(trows, cols) if trows else "(no rows)"]
    md += ["", "## Figures", ""] + [f"![{cap}](figures/{f})" for f, _, cap in figures]
    md += ["", f"Reproduce: `{_command(recipe, scale, out, overrides)}`", ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md))

    page = HtmlReport(recipe.title)
    page.paragraph(f"Claim: {recipe.claim}")
    page.paragraph(header)
    if note:
        page.paragraph(note, kind="note")
    page.heading("Results")
    page.table(main, _MAIN_COLUMNS)
    page.heading("Verdict")
    for v in verdicts or ["(no verdict)"]:
        page.paragraph(v, kind="verdict")
    for title, trows, cols in tables:
        page.heading(title)
        page.table(trows, cols)
    page.heading("Figures")
    for _, fig, cap in figures:
        page.figure(fig, caption=cap)
    page.heading("Reproduce", level=3)
    page.preformatted(_command(recipe, scale, out, overrides) + "\n\n" + recipe.path.read_text())
    html_path = page.write(out / "report.html")
    return md_path, html_path


def _command(recipe: Recipe, scale: str, out: Path, overrides: dict[str, Any] | None) -> str:
    sets = "".join(f" --set {k}={json.dumps(v) if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else v}"
                   for k, v in (overrides or {}).items())
    seeds = " --seeds " + " ".join(map(str, recipe.seeds(scale)))
    return f"convzoo experiment {recipe.name} --scale {scale}{seeds}{sets} --out {out}"


def _hardware(done: dict[str, list[Path]]) -> str:
    """The device of the first finished run, from its summary.json."""
    for paths in done.values():
        for p in paths:
            try:
                hw = json.loads((p / "summary.json").read_text()).get("hardware") or {}
            except (OSError, json.JSONDecodeError):
                continue
            if hw.get("gpu"):
                return f"{hw['gpu']} ({hw.get('device')})"
            if hw.get("cpu"):
                return f"{hw['cpu']}, {hw.get('cpu_count')} cores, {hw.get('torch_threads')} torch threads"
    return ""


def describe(recipe: Recipe) -> dict[str, Any]:
    """A recipe in brief for `convzoo experiment --list`: title, analysis, runs per scale."""
    out = {"name": recipe.name, "title": recipe.title, "analysis": recipe.analysis, "scales": {}}
    for s in recipe.scales:
        runs = recipe.runs_at(s)
        train = copy.deepcopy(runs[0].train) if runs else {}
        out["scales"][s] = {"runs": [r.model or "spec" for r in runs], "seeds": recipe.seeds(s),
                            "epochs": train.get("epochs")}
    return out
