"""The shipped weights: files match their metadata, load strictly, reproduce the recorded
test accuracy on the real Fashion-MNIST test set, never unpickle, and fail clearly."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import convzoo
from convzoo.errors import WeightsError
from convzoo.weights import FIELDS, RECIPES_DIR, WEIGHTS_DIR, list_weights, read_state_dict, sha256_of
from convzoo.weights.measure import evaluate_weights

ENTRIES = list_weights()
IDS = [f"{m['model']}.{m['tag']}" for m in ENTRIES]
#: What this release ships; deleting one of these files must fail a test, not skip it.
SHIPPED = {"lenet5", "lenet5_paper", "resnet20", "plain20", "vgg_a_narrow", "vgg_a_lrn_narrow"}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convzoo", *args], capture_output=True, text=True, timeout=300)


def test_the_release_ships_its_entries():
    assert SHIPPED <= {m["model"] for m in ENTRIES}
    total = sum(m["file_bytes"] for m in ENTRIES)
    assert total <= 15e6, f"shipped weights total {total:,} bytes, over the 15 MB budget"


@pytest.mark.parametrize("meta", ENTRIES, ids=IDS)
def test_file_matches_its_metadata(meta):
    missing = [f for f in FIELDS if f not in meta]
    assert not missing, f"metadata lacks {missing}"
    path = WEIGHTS_DIR / meta["file"]
    assert path.stat().st_size == meta["file_bytes"]
    assert sha256_of(path) == meta["sha256"]
    assert (Path(__file__).parents[1] / meta["recipe"]).is_file()
    assert meta["command"] == f"python weights/make.py {meta['model']}"
    assert len(meta["classes"]) == meta["num_classes"]


@pytest.mark.parametrize("meta", ENTRIES, ids=IDS)
def test_loads_strictly_in_eval_mode(meta):
    model = convzoo.create_model(meta["model"], weights=meta["tag"])
    assert not model.training
    state = read_state_dict(WEIGHTS_DIR / meta["file"])
    assert set(state) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model.weights_meta["sha256"] == meta["sha256"]
    assert sum(p.numel() for p in model.parameters()) == meta["params"]


@pytest.mark.parametrize("meta", ENTRIES, ids=IDS)
def test_reproduces_the_recorded_test_accuracy(meta, fashion_mnist_dir):
    model = convzoo.create_model(meta["model"], weights=meta["tag"])
    result = evaluate_weights(model, meta, data_dir=fashion_mnist_dir)
    assert result["count"] == 10_000
    assert abs(result["top1"] - meta["test_top1"]) <= 0.05, (result["top1"], meta["test_top1"])
    assert abs(result["top5"] - meta["test_top5"]) <= 0.05, (result["top5"], meta["test_top5"])


def test_a_pickle_payload_is_refused(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("pickle code ran",))

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps({"weight": Boom()}))
    with pytest.raises(WeightsError, match="pickle payload.*never unpickles"):
        read_state_dict(bad)
    zipped = tmp_path / "torch.safetensors"
    torch.save({"w": torch.zeros(2)}, zipped)
    with pytest.raises(WeightsError, match="zip"):
        read_state_dict(zipped)


def test_a_damaged_file_is_refused(tmp_path):
    meta = next(m for m in ENTRIES if m["model"] == "lenet5")
    copy = tmp_path / meta["file"]
    shutil.copyfile(WEIGHTS_DIR / meta["file"], copy)
    data = bytearray(copy.read_bytes())
    data[-3] ^= 0x10  # one bit in the last tensor
    copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        read_state_dict(copy, sha256=meta["sha256"], size=meta["file_bytes"])
    with pytest.raises(WeightsError, match="bytes"):
        read_state_dict(copy, sha256=meta["sha256"], size=meta["file_bytes"] + 1)


def test_requests_the_weights_cannot_serve():
    with pytest.raises(WeightsError, match="has no weights 'imagenet'; it has: fashion-mnist"):
        convzoo.create_model("lenet5", weights="imagenet")
    with pytest.raises(WeightsError, match="no shipped weights for 'vgg16'.*lenet5"):
        convzoo.create_model("vgg16", weights="fashion-mnist")
    with pytest.raises(WeightsError, match="10 classes.*num_classes=5"):
        convzoo.create_model("lenet5", weights="fashion-mnist", num_classes=5)
    with pytest.raises(WeightsError, match="1 input channel.*in_channels=3"):
        convzoo.create_model("lenet5", weights="fashion-mnist", in_channels=3)
    assert convzoo.create_model("lenet5", weights="fashion-mnist", num_classes=10, in_channels=1) is not None
    assert convzoo.create_model("lenet5").training  # weights=None stays random, in training mode


def test_weights_command_lists_every_field():
    out = cli("weights", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert [m["sha256"] for m in listed] == [m["sha256"] for m in ENTRIES]
    table = cli("weights", "lenet*")
    assert table.returncode == 0
    assert "lenet5" in table.stdout and f"{ENTRIES[0]['test_top1']:.2f}%" in cli("weights").stdout
    assert "python weights/make.py lenet5" in table.stdout


def test_cli_errors_are_one_line(tmp_path):
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (28, 28), 128).save(img)
    for args, text in (
        (("predict", str(img), "--model", "lenet5", "--weights", "imagenet"), "it has: fashion-mnist"),
        (("predict", str(img), "--model", "vgg16"), "no shipped weights for 'vgg16'"),
        (("predict", str(img)), "give a checkpoint"),
    ):
        out = cli(*args)
        assert out.returncode == 2, out
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], out.stderr


def test_predict_and_pictures_from_shipped_weights(tmp_path, fashion_mnist_dir):
    from PIL import Image

    from convzoo import data as zdata

    test = zdata.load_dataset("fashion-mnist", "test", fashion_mnist_dir)
    model = convzoo.create_model("lenet5", weights="fashion-mnist")
    meta = model.weights_meta
    paths, labels = [], []
    for i in range(8):
        p = tmp_path / f"test{i}.png"
        Image.fromarray(test.images[i, 0].numpy()).save(p)
        paths.append(str(p))
        labels.append(meta["classes"][int(test.labels[i])])
    out = cli("predict", *paths, "--model", "lenet5", "--json")
    assert out.returncode == 0, out.stderr
    predicted = [r["top"][0]["class"] for r in json.loads(out.stdout)]
    # lenet5 gets these eight right (its test accuracy is about 91%; checked when the weights were made)
    assert sum(p == t for p, t in zip(predicted, labels)) >= 7, (predicted, labels)

    filt = cli("viz", "filters", "lenet5", "--out", str(tmp_path / "f.png"))
    assert filt.returncode == 0 and "shipped weights lenet5.fashion-mnist" in filt.stdout, filt.stderr
    feats = cli("viz", "features", "lenet5", "test:0", "--samples", "200", "--data-dir", fashion_mnist_dir,
                "--out", str(tmp_path / "maps.png"))  # fmt: skip
    assert feats.returncode == 0, feats.stderr


def test_train_defaults_to_the_shipped_recipe():
    import argparse

    from convzoo.commands import train as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    from convzoo.train.config import TrainConfig

    recipe = TrainConfig.from_toml(RECIPES_DIR / "lenet5.toml")
    cfg = cmd.build_config(p.parse_args(["lenet5", "--data", "fashion-mnist"]))
    assert cfg.recipe == "convzoo/weights/recipes/lenet5.toml"
    assert (cfg.epochs, cfg.lr, cfg.augment, cfg.label_smoothing) == (
        recipe.epochs, recipe.lr, recipe.augment, recipe.label_smoothing)
    cfg = cmd.build_config(p.parse_args(["lenet5", "--data", "fashion-mnist", "--epochs", "2"]))
    assert cfg.epochs == 2 and cfg.lr == recipe.lr  # a flag overrides the recipe, the rest stays
    assert cmd.build_config(p.parse_args(["lenet5", "--data", "fashion-mnist", "--no-recipe"])).recipe is None
    assert cmd.build_config(p.parse_args(["lenet5", "--data", "mnist"])).recipe is None
