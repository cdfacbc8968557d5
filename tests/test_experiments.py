"""Every experiment's smoke scale runs end to end: training runs, results.json, report.md and a
self-contained report.html with its figures. Accuracy is not checked (a few dozen images,
one epoch); the pipeline and the report are. Recipe errors are user errors (exit status 2)."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from convzoo.experiments import list_experiments, load_recipe, run_experiment

EXPECTED = {"lenet", "degradation", "lrn", "residual-units", "densenet-edge", "zoo", "scales"}


def test_all_experiments_are_there():
    assert EXPECTED <= set(list_experiments())


@pytest.mark.parametrize("name", sorted(list_experiments()))
def test_recipe_has_both_scales(name, tmp_path):
    from convzoo.experiments import plan

    recipe = load_recipe(name)
    for scale in ("smoke", "full"):
        runs = recipe.runs_at(scale)
        assert runs and recipe.seeds(scale)
        # every run's training configuration is valid and every model name is registered
        assert len(plan(recipe, scale, tmp_path)) == len(runs) * len(recipe.seeds(scale))
    full = recipe.runs_at("full")[0].train
    smoke = recipe.runs_at("smoke")[0].train
    # a smoke run is a pipeline check: a subset of the data and one epoch
    assert smoke.get("subset") and smoke.get("epochs") == 1
    assert not full.get("subset") and full.get("epochs", 10) > 1


@pytest.mark.parametrize("name", sorted(list_experiments()))
def test_smoke(name, tmp_path, fashion_mnist_dir, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA", fashion_mnist_dir)
    recipe = load_recipe(name)
    out = tmp_path / name
    res = run_experiment(name, "smoke", out, progress=False)
    runs = recipe.runs_at("smoke")
    # one finished run folder per run and seed
    for run in runs:
        for seed in recipe.seeds("smoke"):
            summary = json.loads((out / "runs" / f"{run.name}-s{seed}" / "summary.json").read_text())
            assert summary["test_top1"] is not None
    results = json.loads((out / "results.json").read_text())
    assert [r["run"] for r in results["rows"]] == [r.name for r in runs]
    # each row aggregates its run folders: the mean over seeds of the final test error
    # (summary.json) and training error (the last epoch of metrics.jsonl), the parameters
    for run, row in zip(runs, results["rows"]):
        dirs = [out / "runs" / f"{run.name}-s{seed}" for seed in recipe.seeds("smoke")]
        sums = [json.loads((d / "summary.json").read_text()) for d in dirs]
        lasts = [_last_epoch(d) for d in dirs]
        assert row["seeds"] == len(dirs) and row["params"] == sums[0]["params"] > 0
        assert row["test_error"] == pytest.approx(statistics.fmean(100.0 - s["test_top1"] for s in sums))
        assert row["train_error"] == pytest.approx(statistics.fmean(100.0 - e["train_top1"] for e in lasts))
        assert row["test_top1"] == pytest.approx(100.0 - row["test_error"])
    assert results["verdicts"] and res.verdicts == results["verdicts"]
    if recipe.analysis == "scales":
        protocols = recipe.eval_options("smoke")["protocols"]
        assert sorted(results["evaluations"]) == sorted(r.name for r in runs)
        for evals in results["evaluations"].values():
            assert [e["protocol"] for e in evals] == [p["name"] for p in protocols]
            assert all(0 <= e["test_error"] <= 100 and e["views"] >= 1 for e in evals)
    else:
        assert results["evaluations"] == {}
    md = (out / "report.md").read_text()
    assert recipe.title in md and "## Verdict" in md and "Smoke scale" in md
    for fig in re.findall(r"\]\((figures/[^)]+)\)", md):
        assert (out / fig).stat().st_size > 1000
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(re.findall(r"\]\(figures/", md)) >= 1
    assert not re.search(r'(?:src|href)="(?!data:|#)', html), "the HTML report must be self-contained"
    assert "<table>" in html and recipe.claim.split()[0] in html


def _last_epoch(run_dir: Path) -> dict:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, filter(None, lines)) if r.get("kind") == "epoch"][-1]


def test_finished_runs_are_reused(tmp_path, fashion_mnist_dir, monkeypatch):
    monkeypatch.setenv("CONVZOO_DATA", fashion_mnist_dir)
    log: list[str] = []
    run_experiment("lenet", "smoke", tmp_path, progress=False)
    before = (tmp_path / "runs" / "lenet5-s0" / "summary.json").stat().st_mtime_ns
    run_experiment("lenet", "smoke", tmp_path, progress=False, log=log.append)
    assert all("reusing" in line for line in log) and len(log) == 2
    assert (tmp_path / "runs" / "lenet5-s0" / "summary.json").stat().st_mtime_ns == before


def write_recipe(tmp_path: Path, text: str) -> str:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return str(p)


GOOD_RUN = '[[runs]]\nname = "a"\nmodel = "lenet5"\n[smoke]\n[full]\n'


@pytest.mark.parametrize("text,needle", [
    ("title = 'x'\n[smoke]\n[full]\n", "[[runs]]"),
    ("colour = 'red'\n" + GOOD_RUN, "colour"),
    ("analysis = 'vibes'\n" + GOOD_RUN, "analysis must be one of"),
    ('[[runs]]\nname = "a"\n[smoke]\n[full]\n', "exactly one of model or spec"),
    ('[[runs]]\nname = "a"\nmodel = "lenet5"\nepochs = 3\n[smoke]\n[full]\n', "epochs"),
    ('[[runs]]\nname = "a"\nmodel = "lenet5"\n', "[smoke]"),
    ('[[runs]]\nname = "a"\nmodel = "lenet5"\n[smoke]\nseeds = []\n[full]\n', "seeds"),
    ('[[runs]]\nname = "a"\nmodel = "lenet5"\n[smoke.runs.b]\nmodel = "lenet5"\n[full]\n', "not a run"),
    ("title = \n", "not valid TOML"),
])  # fmt: skip
def test_bad_recipes(text, needle, tmp_path):
    from convzoo.errors import ConfigError

    path = write_recipe(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(needle)):
        recipe = load_recipe(path)
        for scale in ("smoke", "full"):
            recipe.runs_at(scale)
            recipe.seeds(scale)


def test_bad_model_and_train_key_fail_before_training(tmp_path):
    from convzoo.errors import ConfigError, UnknownModelError
    from convzoo.experiments import plan

    recipe = load_recipe(write_recipe(tmp_path, GOOD_RUN.replace('"lenet5"', '"lenet6"')))
    with pytest.raises(UnknownModelError, match="lenet5"):
        plan(recipe, "smoke", tmp_path)
    recipe = load_recipe(write_recipe(tmp_path, GOOD_RUN.replace("[smoke]", "[smoke]\ntrain = { epoks = 1 }")))
    with pytest.raises(ConfigError, match="epoks"):
        plan(recipe, "smoke", tmp_path)


def test_overrides_and_seeds_reach_every_run(tmp_path):
    from convzoo.experiments import parse_overrides, plan

    over = parse_overrides(["epochs=3", "amp=bf16", "channels_last=true", 'device="cpu"'])
    assert over == {"epochs": 3, "amp": "bf16", "channels_last": True, "device": "cpu"}
    recipe = load_recipe("degradation")
    jobs = plan(recipe, "full", tmp_path, over)
    assert len(jobs) == 4 * len(recipe.seeds("full"))
    for run, seed, cfg in jobs:
        assert cfg.epochs == 3 and cfg.amp == "bf16" and cfg.channels_last
        assert cfg.lr == 0.1 and cfg.weight_decay == 1e-4  # the recipe's protocol is kept
        assert cfg.run_dir() == tmp_path / "runs" / f"{run.name}-s{seed}"


def test_cli(capsys):
    from convzoo.cli import main

    assert main(["experiment", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in EXPECTED)
    assert main(["experiment", "lenett"]) == 2
    assert "did you mean lenet" in capsys.readouterr().err
    assert main(["experiment"]) == 2


def test_degradation_verdict_names_the_networks_trained():
    from convzoo.experiments import analyse_degradation, load_recipe

    rows = [dict(run=n, model=m, role=role, train_error=e, test_error=e) for n, m, role, e in [
        ("plain20", "plain20", "plain_shallow", 10.0), ("plain56", "plain32", "plain_deep", 20.0),
        ("resnet20", "resnet20", "residual_shallow", 9.0), ("resnet56", "resnet32", "residual_deep", 8.0)]]  # fmt: skip
    verdicts, _ = analyse_degradation(rows, load_recipe("degradation"), "smoke")
    assert "plain56 (trained as plain32) 20.00%" in verdicts[0] and "plain20 10.00%" in verdicts[0]
    assert "resnet56 (trained as resnet32)" in verdicts[1]


def test_recipes_are_package_data(tmp_path, monkeypatch):
    import convzoo
    from convzoo.experiments import EXPERIMENTS_ENV, RECIPES_DIR, experiments_dir

    monkeypatch.delenv(EXPERIMENTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)  # found from anywhere, not through the working folder
    assert RECIPES_DIR == Path(convzoo.__file__).resolve().parent / "experiments" / "recipes"
    assert experiments_dir() == RECIPES_DIR
    assert list_experiments() == sorted(p.stem for p in RECIPES_DIR.glob("*.toml"))
    assert load_recipe("lenet").path == RECIPES_DIR / "lenet.toml"
    # $CONVZOO_EXPERIMENTS names another folder of recipes
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "tiny.toml").write_text(GOOD_RUN)
    monkeypatch.setenv(EXPERIMENTS_ENV, str(mine))
    assert list_experiments() == ["tiny"] and load_recipe("tiny").path == mine / "tiny.toml"


def test_every_analysis_is_a_row_of_one_table_with_one_signature():
    import inspect

    from convzoo.experiments import ANALYSERS, ANALYSES

    assert ANALYSES == tuple(ANALYSERS)
    assert {load_recipe(n).analysis for n in list_experiments()} <= set(ANALYSES)
    params = {name: list(inspect.signature(a.analyse).parameters) for name, a in ANALYSERS.items()}
    assert all(p == ["rows", "recipe", "scale", "evaluations"] for p in params.values()), params
    # only the scales analysis needs the trained models tested under its protocols first
    assert [name for name, a in ANALYSERS.items() if a.evaluates] == ["scales"]


def test_scales_analysis_reads_the_evaluations():
    from convzoo.experiments import ANALYSERS

    rows = [dict(run=n, model="spec", role=role, test_error=e, test_error_std=0.0, seeds=1)
            for n, role, e in [("fixed_scale", "fixed", 12.0), ("scale_jitter", "jitter", 11.0)]]  # fmt: skip
    evals = {"fixed_scale": [{"protocol": "1 crop", "test_error": 12.0, "views": 1, "scales": [32]},
                             {"protocol": "10 crops", "test_error": 11.5, "views": 10, "scales": [37]}]}  # fmt: skip
    verdicts, tables = ANALYSERS["scales"].analyse(rows, load_recipe("scales"), "smoke", evals)
    assert verdicts[0].startswith("Scale jittering at training lowers the test error (12.00% fixed vs 11.00%")
    assert "fixed_scale: '10 crops' lowers the error against '1 crop' (11.50% vs 12.00%)." in verdicts
    ((_, table, cols),) = tables
    assert [r["test protocol"] for r in table] == ["1 crop", "10 crops"] and table[1]["views"] == 10
    assert table[1]["test scales"] == "37" and cols[-1] == "test error (%)"
