"""Analyses: how each experiment judges its claim, one table and one signature.

Every analyser is called as `analyse(rows, recipe, scale, evaluations)` and returns
`(verdicts, tables)`: the verdicts are sentences for the report, the tables
`(title, rows, columns)` extra tables. `rows` are `aggregate.summarise`'s, one per run;
`evaluations` maps a run name to its test errors under the recipe's test protocols, and is
filled (by the runner, before the analysis) only for the analyses whose `Analysis.evaluates`
is set. `ANALYSERS` is the table, `ANALYSES` its names (what a recipe's `analysis` may be).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError
from .schema import Recipe

Row = dict[str, Any]
Verdicts = list[str]
Tables = list[tuple[str, list[Row], list[str]]]
#: run name -> one row per test protocol ({"protocol", "test_error", "top5_error", "views", "scales"})
Evaluations = dict[str, list[Row]]


def _differs(a: Row, b: Row, key: str = "test_error") -> tuple[float, bool]:
    """(b - a, whether the gap exceeds the seeds' spread: |gap| > sd_a + sd_b, or any gap for one seed)."""
    gap = b[key] - a[key]
    spread = (a.get(f"{key}_std") or 0.0) + (b.get(f"{key}_std") or 0.0)
    return gap, abs(gap) > spread


def _by_role(rows: list[Row], role: str) -> Row | None:
    return next((r for r in rows if r.get("role") == role), None)


def analyse_compare(rows: list[Row], recipe: Recipe, scale: str,
                    evaluations: Evaluations | None = None) -> tuple[Verdicts, Tables]:
    ranked = sorted((r for r in rows if r["test_error"] is not None), key=lambda r: r["test_error"])
    if len(ranked) < 2:
        return [], []
    best, other = ranked[0], ranked[1]
    gap, real = _differs(best, other)
    return [f"{best['run']} has the lowest test error ({best['test_error']:.2f}%); {other['run']} is "
            f"{gap:.2f} points behind{_spread_words(best, other, real)}."], []


def _spread_words(a: Row, b: Row, real: bool) -> str:
    """', more than the spread over seeds' / ', within ...' / a note that one seed has no spread."""
    if min(a["seeds"], b["seeds"]) < 2:
        return " (one seed each: no spread measured, so no claim of significance)"
    return ", more than the spread over seeds" if real else ", within the spread over seeds"


def _name(row: Row) -> str:
    """A run's name as a verdict prints it: with the network actually trained when a scale
    replaced it (the smoke scale trains plain32 for the plain56 row, say)."""
    model = row.get("model")
    return row["run"] if model in (None, "spec", row["run"]) else f"{row['run']} (trained as {model})"


def analyse_degradation(rows: list[Row], recipe: Recipe, scale: str,
                        evaluations: Evaluations | None = None) -> tuple[Verdicts, Tables]:
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


def analyse_lrn(rows: list[Row], recipe: Recipe, scale: str,
                evaluations: Evaluations | None = None) -> tuple[Verdicts, Tables]:
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


def analyse_residual_units(rows: list[Row], recipe: Recipe, scale: str,
                           evaluations: Evaluations | None = None) -> tuple[Verdicts, Tables]:
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


def analyse_densenet_edge(rows: list[Row], recipe: Recipe, scale: str,
                          evaluations: Evaluations | None = None) -> tuple[Verdicts, Tables]:
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


def analyse_zoo(rows: list[Row], recipe: Recipe, scale: str,
                evaluations: Evaluations | None = None) -> tuple[Verdicts, Tables]:
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


def analyse_scales(rows: list[Row], recipe: Recipe, scale: str,
                   evaluations: Evaluations | None = None) -> tuple[Verdicts, Tables]:
    evals = evaluations or {}
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


Analyser = Callable[[list[Row], Recipe, str, Evaluations | None], tuple[Verdicts, Tables]]


@dataclass(frozen=True)
class Analysis:
    """One row of the table: the analyser, and what else the runner and the report do for it.

    evaluates: test the first seed's trained model of every run under the recipe's `[eval]`
    protocols before the analysis (`runner.evaluate_protocols`). curve_groups: role prefixes
    whose runs also get a training-curve figure of their own (ResNet Figure 6: plain nets in
    one panel, residual nets in the other).
    """

    analyse: Analyser
    evaluates: bool = False
    curve_groups: tuple[str, ...] = ()


ANALYSERS: dict[str, Analysis] = {
    "compare": Analysis(analyse_compare),
    "degradation": Analysis(analyse_degradation, curve_groups=("plain", "residual")),
    "lrn": Analysis(analyse_lrn),
    "residual_units": Analysis(analyse_residual_units),
    "densenet_edge": Analysis(analyse_densenet_edge),
    "zoo": Analysis(analyse_zoo),
    "scales": Analysis(analyse_scales, evaluates=True),
}
ANALYSES = tuple(ANALYSERS)
