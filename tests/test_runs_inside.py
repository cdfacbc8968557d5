"""Run folders read safely (convzoo.runs) and a trained network's inside as data (viz.inside)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import convzoo
from convzoo.runs import RunPathError, list_runs, read_metrics, resolve_run, run_detail


def _fake_run(folder: Path, *, epochs: int = 2, done: int | None = 2, pid: int | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "lenet5", "data": "fashion-mnist", "epochs": epochs}))
    lines = [{"kind": "step", "epoch": 1, "step": 10, "loss": 1.0, "images_per_second": 100.0},
             {"kind": "epoch", "epoch": 1, "step": 20, "test_top1": 80.0}]  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    if done is not None:
        (folder / "summary.json").write_text(json.dumps(
            {"model": "lenet5", "epochs_done": done, "steps": 40, "test_top1": 85.0, "best_test_top1": 86.0,
             "images_per_second": 123.0}))  # fmt: skip
    if pid is not None:
        (folder / ".lock").write_text(f"pid={pid} host=x since=2026-12-01T00:00:00")
    return folder


def test_list_runs_status_and_experiments(tmp_path):
    _fake_run(tmp_path / "a")
    _fake_run(tmp_path / "b", done=1)
    _fake_run(tmp_path / "c", done=None, pid=os.getpid())
    exp = tmp_path / "exp" / "lenet-smoke"
    _fake_run(exp / "runs" / "lenet5-s0")
    (exp / "results.json").write_text(json.dumps({"experiment": "lenet", "scale": "smoke", "verdicts": ["v"],
                                                  "runs": {"lenet5": [str(exp / "runs" / "lenet5-s0")]}}))  # fmt: skip
    listed = list_runs(tmp_path)
    status = {r["path"]: r["status"] for r in listed["runs"]}
    assert status == {"a": "finished", "b": "interrupted", "c": "running", "exp/lenet-smoke/runs/lenet5-s0": "finished"}
    row = next(r for r in listed["runs"] if r["path"] == "a")
    assert (row["test_top1"], row["best_test_top1"], row["images_per_second"]) == (85.0, 86.0, 123.0)
    running = next(r for r in listed["runs"] if r["path"] == "c")
    assert running["test_top1"] == 80.0 and running["images_per_second"] == 100.0  # from metrics.jsonl
    (e,) = listed["experiments"]
    assert e["experiment"] == "lenet" and e["runs"] == [{"name": "lenet5", "path": "exp/lenet-smoke/runs/lenet5-s0"}]


def test_metrics_are_read_once_each_as_the_file_grows(tmp_path):
    run = _fake_run(tmp_path / "r")
    first = read_metrics(run)
    assert len(first["records"]) == 2
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"kind": "step", "step": 30}) + "\n" + '{"kind": "step", "st')  # a half-written line
    second = read_metrics(run, first["offset"])
    assert [r["step"] for r in second["records"]] == [30]
    with (run / "metrics.jsonl").open("a") as fh:
        fh.write('ep": 40}\n')
    assert [r["step"] for r in read_metrics(run, second["offset"])["records"]] == [40]
    assert read_metrics(run, 10**9)["records"][0]["step"] == 10  # a replaced file starts again


def test_paths_outside_the_root_are_refused(tmp_path):
    root = tmp_path / "runs"
    _fake_run(root / "ok")
    outside = _fake_run(tmp_path / "secret")
    (root / "link").symlink_to(outside)
    for bad in ("../secret", "/etc", "ok/../../secret", "link", "link/config.json", "C:/x"):
        with pytest.raises(RunPathError):
            resolve_run(root, bad)
    with pytest.raises(RunPathError) as err:
        run_detail(root, "nope")
    assert err.value.missing
    assert run_detail(root, "ok")["status"] == "finished"
    assert "secret" not in json.dumps(list_runs(root))  # symlinks are not followed


def test_inside_lenet5_shipped(fashion_mnist_dir):
    from convzoo import data as zdata
    from convzoo.viz.inside import confusion_data, features_data, filters_data
    from convzoo.weights import as_checkpoint

    model = convzoo.create_model("lenet5", weights="fashion-mnist")
    ckpt = as_checkpoint(model.weights_meta)
    f = filters_data(model)
    assert f["shape"] == [6, 1, 5, 5] and len(f["filters"]) == 6 and all(x["png"] for x in f["filters"])
    test = zdata.load_dataset("fashion-mnist", "test", fashion_mnist_dir).subset(200)
    d = features_data(model, ckpt, test.images[0])
    assert d["predictions"][0]["class"] == ckpt["classes"][int(test.labels[0])]
    assert abs(sum(p["probability"] for p in d["predictions"]) - 1) < 0.05
    assert [s["shape"][0] for s in d["stages"]][:1] == [6]
    for s in d["stages"]:
        assert all(m["mean"] > 0 or s["dead_channels"] == 0 for m in s["maps"])
    c = confusion_data(model, ckpt, test, examples=4)
    assert c["count"] == 200 and sum(map(sum, c["matrix"])) == 200
    assert c["top1"] > 80 and len(c["misclassified"]) == 4
    assert all(m["true"] != m["predicted"] for m in c["misclassified"])


def test_dead_channels_are_never_top_activating():
    import torch
    from torch import nn

    from convzoo.viz.features import top_patches

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU())
    with torch.no_grad():
        model[0].weight[1].zero_()
        model[0].bias[1] = -1.0  # channel 1: always below zero, so 0 after the ReLU
        model[0].weight[0].fill_(0.5)
        model[0].bias[0] = 0.1  # channel 0: always fires on non-negative images
    images = torch.rand(8, 1, 10, 10)
    patches = top_patches(model, images, "1", [0, 1, 2], k=3)
    assert patches[1] == [] and len(patches[0]) == 3 and all(p.activation > 0 for p in patches[0])
