"""`convzoo train`, `convzoo eval`, `convzoo predict` as a user runs them, error paths included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import numpy as np
from PIL import Image

from convzoo.cli import main

from test_train import write_fake_fashion_mnist

CONVZOO = [sys.executable, "-m", "convzoo"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fm"), n_train=384, n_test=128)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data) -> Path:
    """A run trained through the command line from a TOML file, with a flag overriding it."""
    root = tmp_path_factory.mktemp("cli")
    toml = root / "lenet.toml"
    toml.write_text(
        f'model = "lenet5"\ndata = "fashion-mnist"\ndata_dir = "{data}"\nepochs = 5\nbatch_size = 32\n'
        'lr = 0.1\nschedule = "constant"\naugment = "none"\nthreads = 1\n'
    )
    run = root / "run"
    proc = subprocess.run(CONVZOO + ["train", "--config", str(toml), "--epochs", "2", "--out", str(run), "--quiet"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test top-1" in proc.stdout and str(run) in proc.stdout
    return run


def _err(capsys) -> str:
    return capsys.readouterr().err


def test_config_file_with_flag_override(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["epochs"] == 2 and config["lr"] == 0.1 and config["batch_size"] == 32
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["epochs_done"] == 2 and summary["test_top1"] > 50


def test_eval_and_predict(trained, capsys, tmp_path):
    assert main(["eval", str(trained), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    summary = json.loads((trained / "summary.json").read_text())
    assert result["count"] == 128 and result["top1"] == pytest.approx(summary["test_top1"])
    assert main(["eval", str(trained / "checkpoints" / "best.pt"), "--crops", "10", "--json"]) == 0
    ten = json.loads(capsys.readouterr().out)
    # trained without augmentation on images no larger than the input: the 10-crop views are
    # drawn from what training saw (no shifts, no mirror), so one view, the same accuracy
    assert ten["views"] == 1 and ten["top1"] == pytest.approx(result["top1"]) and ten["protocol"]

    img = np.zeros((28, 28), dtype=np.uint8)
    img[2 * 4 + 2 : 2 * 4 + 7, 3:25] = 210  # class 4's band ("Coat")
    Image.fromarray(img).save(tmp_path / "coat.png")
    Image.fromarray(np.stack([img] * 3, axis=-1)).resize((56, 56)).save(tmp_path / "coat_rgb.jpg", quality=95)
    assert main(["predict", str(trained), str(tmp_path / "coat.png"), str(tmp_path / "coat_rgb.jpg"), "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert [len(p["top"]) for p in preds] == [5, 5]
    assert preds[0]["top"][0]["class"] == "Coat" and preds[1]["top"][0]["class"] == "Coat"
    assert sum(t["probability"] for t in preds[0]["top"]) <= 1.0 + 1e-6


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "lenet6", "--data", "fashion-mnist"], "unknown model 'lenet6'"),
        (["train", "lenet5", "--data", "imagenet-21k"], "unknown data set"),
        (["train", "lenet5", "--data", "fashion-mnist", "--epochs", "0"], "epochs must be a positive integer"),
        (["train", "lenet5", "--data", "fashion-mnist", "--amp", "fp16", "--device", "cpu"], "fp16"),
        (["train", "lenet5"], "no data set given"),
        (["train", "lenet5", "--data", "fashion-mnist", "--batch-size", "100000", "--subset", "64"], "batch_size"),
        (["train", "lenet5", "--data", "fashion-mnist", "--lr", "1e8", "--momentum", "0", "--subset", "128",
          "--batch-size", "16", "--augment", "none"], "the loss became NaN or infinite at step"),
    ],
)
def test_train_user_errors_exit_2(argv, expected, capsys, data, tmp_path):
    argv = argv + ["--data-dir", str(data), "--out", str(tmp_path / "r"), "--quiet"]
    assert main(argv) == 2
    err = _err(capsys)
    assert expected in err and "Traceback" not in err and err.startswith("convzoo train: error:")


def test_missing_data_names_the_places(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("CONVZOO_DATA", raising=False)
    monkeypatch.setenv("CONVZOO_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    code = main(["train", "lenet5", "--data", "cifar10", "--data-dir", str(tmp_path / "empty"), "--quiet",
                 "--out", str(tmp_path / "r")])  # fmt: skip
    assert code == 2
    err = _err(capsys)
    assert "not found" in err and str(tmp_path / "empty") in err


def test_bad_flag_values_are_argparse_errors(capsys):
    for argv in (["train", "lenet5", "--schedule", "linear"], ["train", "lenet5", "--lr", "fast"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "invalid" in _err(capsys)


def test_unknown_toml_key(tmp_path, capsys):
    toml = tmp_path / "x.toml"
    toml.write_text('model = "lenet5"\ndata = "fashion-mnist"\nlearning_rate = 0.1\n')
    assert main(["train", "--config", str(toml)]) == 2
    err = _err(capsys)
    assert "'learning_rate'" in err and "valid keys" in err and "lr" in err


def test_resume_with_another_model_or_nothing_to_resume(trained, capsys, tmp_path, data):
    assert main(["train", "alexnet", "--resume", "--out", str(trained), "--quiet"]) == 2
    assert "made for model 'lenet5', not 'alexnet'" in _err(capsys)
    assert main(["train", "lenet5", "--data", "fashion-mnist", "--data-dir", str(data), "--resume", "--quiet",
                 "--out", str(tmp_path / "never")]) == 2  # fmt: skip
    assert "nothing to resume" in _err(capsys)


def test_damaged_checkpoint_and_image_errors(trained, capsys, tmp_path):
    bad = tmp_path / "bad.pt"
    good = (trained / "checkpoints" / "last.pt").read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    assert main(["eval", str(bad)]) == 2
    assert "damaged" in _err(capsys)
    assert main(["predict", str(bad), "x.png"]) == 2
    assert "damaged" in _err(capsys)
    notimg = tmp_path / "notes.png"
    notimg.write_text("hello")
    assert main(["predict", str(trained), str(notimg)]) == 2
    assert "cannot read image" in _err(capsys)


def test_ctrl_c_checkpoints_then_resume_finishes(tmp_path, data):
    run = tmp_path / "int"
    cmd = CONVZOO + ["train", "lenet5", "--data", "fashion-mnist", "--data-dir", str(data), "--epochs", "3",
                     "--batch-size", "16", "--augment", "none", "--log-every", "2", "--threads", "1", "--quiet",
                     "--out", str(run)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and metrics.read_text().count('"kind": "step"') >= 2:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "stopped at step" in out and "--resume" in out
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("step-*.pt"))
    assert ckpts, "Ctrl-C wrote no checkpoint"
    stopped = int(out.split("stopped at step ")[1].split()[0])
    assert ckpts[-1] == f"step-{stopped:08d}.pt"  # the checkpoint of the last finished step
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["steps"] == 3 * (384 // 16)
