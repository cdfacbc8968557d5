"""convzoo speedrun: the targets' recipes, the timing and the report, the CLI's errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convzoo import speedrun as sr
from convzoo.cli import main
from convzoo.train.config import TrainConfig


def test_targets_are_shipped_and_valid():
    assert sr.targets() == ["lenet5-91", "resnet-94"]
    lenet = sr.load_target("lenet5-91")
    assert (lenet.threshold, lenet.goal_seconds) == (91.0, 20.0)
    # the lecture's exact LeNet-5: the registered model, no builder arguments
    assert lenet.train["model"] == "lenet5" and "model_kwargs" not in lenet.train
    assert lenet.train["data"] == "fashion-mnist"
    resnet = sr.load_target("resnet-94")
    assert (resnet.threshold, resnet.goal_seconds) == (94.0, 900.0)
    assert "model_kwargs" not in resnet.train
    for t in (lenet, resnet):
        cfg = TrainConfig.from_dict(sr.target_config(t, 3, out="x"))
        assert cfg.seed == 3 and cfg.out == "x" and cfg.overwrite
        assert cfg.recipe == f"convzoo/weights/recipes/speedrun/{t.name}.toml"


def test_unknown_target_is_one_message(capsys):
    assert main(["speedrun", "lenet5-99"]) == 2
    err = capsys.readouterr().err
    assert "unknown speedrun target 'lenet5-99'" in err and "lenet5-91, resnet-94" in err
    assert "Traceback" not in err
    assert main(["speedrun", "../weights/recipes/lenet5"]) == 2


@pytest.mark.parametrize("argv, needle", [
    (["speedrun", "lenet5-91", "--seeds", "0"], "--seeds must be a positive"),
    (["speedrun", "lenet5-91", "--threads", "0"], "--threads must be a positive"),
    (["speedrun", "lenet5-91", "--threads", "999"], "threads 999 is more than"),
])  # fmt: skip
def test_bad_options(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def _run(seed, top1, wall):
    return {"seed": seed, "test_top1": top1, "wall_seconds": wall, "startup_seconds": 2.0, "train_seconds": wall - 4,
            "epochs": 4, "steps": 100, "images_per_second": 1.0, "reached": top1 >= 91.0,
            "_hardware": {"cpu": "AMD EPYC", "torch_threads": 2}, "_versions": {"torch": "2.x"}}  # fmt: skip


def test_summary_statistics_and_verdict():
    t = sr.load_target("lenet5-91")
    res = sr.summarize(t, [_run(0, 91.2, 18.0), _run(1, 91.6, 20.0), _run(2, 91.1, 19.0)], load=(0.1, 0.2))
    assert res["target"] == "lenet5-91" and [r["seed"] for r in res["runs"]] == [0, 1, 2]
    assert set(res["runs"][0]) == {"seed", "test_top1", "wall_seconds", "startup_seconds", "train_seconds", "epochs",
                                   "steps", "images_per_second", "reached"}  # fmt: skip
    assert res["mean_wall_seconds"] == pytest.approx(19.0) and res["std_wall_seconds"] == pytest.approx(1.0)
    assert res["mean_test_top1"] == pytest.approx(91.3) and res["min_test_top1"] == 91.1
    assert res["reached_all"] and res["goal_met"] and res["runs_reached"] == 3
    assert res["hardware"]["cpu"] == "AMD EPYC" and res["versions"]["torch"] == "2.x"
    text = sr.format_report(res)
    assert "19.00 s +- 1.00 s over 3 seeds" in text and "3/3 seeds reached 91.0%" in text and "goal MET" in text
    assert "loaded machine" not in text
    # one seed below the threshold: not met, and said why; a slow mean: not met either
    low = sr.summarize(t, [_run(0, 90.9, 10.0), _run(1, 91.5, 10.0)], load=(0.1, 0.1))
    assert not low["reached_all"] and not low["goal_met"] and "1 seed(s) below 91.0%" in sr.format_report(low)
    slow = sr.summarize(t, [_run(0, 91.5, 30.0)], load=(3.0, 3.0))
    assert slow["reached_all"] and not slow["goal_met"] and slow["std_wall_seconds"] is None
    text = sr.format_report(slow)
    assert "mean 30.0 s > 20 s" in text and "(one seed)" in text and "loaded machine" in text


def test_two_seeds_really_train(tmp_path, monkeypatch, fashion_mnist_dir):
    """A tiny target through the real path: a fresh process per seed, the trainer, the timing."""
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "tiny.toml").write_text(
        '[speedrun]\nthreshold = 10.0\ngoal_seconds = 600\n\n[train]\nmodel = "lenet5"\ndata = "fashion-mnist"\n'
        'input_size = 32\nepochs = 1\nbatch_size = 64\nsubset = 256\naugment = "none"\nthreads = 1\nlr = 0.05\n'
    )
    monkeypatch.setattr(sr, "RECIPES_DIR", recipes)
    lines = []
    res = sr.speedrun("tiny", 2, out=tmp_path / "runs", data_dir=fashion_mnist_dir, report=lines.append)
    assert [r["seed"] for r in res["runs"]] == [0, 1]
    for r in res["runs"]:
        assert 0 <= r["test_top1"] <= 100 and r["epochs"] == 1 and r["steps"] == 4
        # the wall time holds the process start-up and the training
        assert r["wall_seconds"] > r["startup_seconds"] > 0 and r["wall_seconds"] > r["train_seconds"] > 0
        summary = json.loads((tmp_path / "runs" / f"seed-{r['seed']}" / "summary.json").read_text())
        assert summary["test_top1"] == r["test_top1"] and summary["config"]["seed"] == r["seed"]
    assert res["std_wall_seconds"] is not None and res["hardware"]["cpu"] and res["versions"]["torch"]
    assert len(lines) == 4 and lines[1].startswith("seed 0: test top-1")


def test_a_failing_seed_is_one_message(tmp_path, monkeypatch, capsys):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "nodata.toml").write_text(
        '[speedrun]\nthreshold = 10.0\ngoal_seconds = 60\n\n[train]\nmodel = "lenet5"\ndata = "fashion-mnist"\n'
        f'data_dir = "{tmp_path / "empty"}"\nepochs = 1\nthreads = 1\n'
    )
    monkeypatch.setattr(sr, "RECIPES_DIR", recipes)
    assert main(["speedrun", "nodata", "--seeds", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "seed 0's training failed (exit status 2)" in err and "Traceback" not in err


def test_help_does_not_import_torch():
    code = "import sys; from convzoo.cli import main\ntry:\n main(['speedrun', '--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "False", out.stderr[-2000:]
    assert "lenet5-91" in out.stdout


def test_package_data_lists_the_recipes():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert "weights/recipes/speedrun/*.toml" in text


@pytest.mark.parametrize("flip", [True, False])
def test_eval_flip_is_what_the_trainer_evaluates(flip, tmp_path, monkeypatch, fashion_mnist_dir):
    """TrainConfig.eval_flip (test-time flip, a trick of the speedrun): every evaluation of the
    run scores each image and its mirror; the run's test top-1 is that of its final weights."""
    import convzoo.evaluate as ev
    from convzoo.train import load_checkpoint, train

    seen = []
    real = ev.evaluate

    def spy(*args, **kwargs):
        seen.append(kwargs.get("flip"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "evaluate", spy)
    cfg = TrainConfig(model="lenet5", data="fashion-mnist", data_dir=fashion_mnist_dir, epochs=1, batch_size=64,
                      subset=128, augment="none", threads=1, eval_flip=flip, out=str(tmp_path / "r"))  # fmt: skip
    run = train(cfg, progress=False)
    assert seen == [flip]
    monkeypatch.setattr(ev, "evaluate", real)
    from convzoo import data as zdata

    model, _ = load_checkpoint(run)
    test = zdata.load_dataset("fashion-mnist", "test", fashion_mnist_dir).subset(128)
    aug = zdata.make_augment("fashion-mnist", 32, recipe="none", train=False)
    again = real(model, test, batch_size=512, input_size=32, augment=aug, flip=flip)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_top1"] == pytest.approx(again["top1"]) and again["views"] == (2 if flip else 1)


def test_eval_flip_flag():
    import argparse

    from convzoo.commands import train as train_cmd

    p = argparse.ArgumentParser()
    train_cmd.add_arguments(p)
    cfg = train_cmd.build_config(p.parse_args(["lenet5", "--data", "fashion-mnist", "--no-recipe", "--eval-flip"]))
    assert cfg.eval_flip is True
    assert TrainConfig().eval_flip is False


def test_set_overrides_are_parsed_checked_and_recorded(capsys):
    assert sr.parse_overrides(["epochs=6", "lr=0.2", "eval_flip=false", 'optimizer="adamw"', "augment=flip"]) == {
        "epochs": 6, "lr": 0.2, "eval_flip": False, "optimizer": "adamw", "augment": "flip"}
    with pytest.raises(sr.ConfigError, match="KEY=VALUE"):
        sr.parse_overrides(["epochs"])
    assert main(["speedrun", "lenet5-91", "--set", "epoch=3"]) == 2
    assert "unknown key 'epoch'" in capsys.readouterr().err
    assert main(["speedrun", "lenet5-91", "--set", "seed=3"]) == 2
    assert "the speedrun sets it" in capsys.readouterr().err
    assert main(["speedrun", "lenet5-91", "--set", "epochs=0"]) == 2
    assert "epochs must be a positive integer" in capsys.readouterr().err
    t = sr.load_target("lenet5-91")
    res = sr.summarize(t, [_run(0, 91.2, 18.0)])
    res["overrides"] = {"epochs": 6}
    assert "with epochs=6" in sr.format_report(res)
