"""Training a network written in the lecture's notation (`convzoo train "6c5w1s0p 2w2s ..."`):
it is built from its text at the data's (or the given) input side, checked against the data's
classes before any work, saved with its text, and rebuilt from it by eval, resume and viz."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from convzoo.errors import ConfigError, NotationError
from convzoo.registry import list_models
from convzoo.train import network
from test_serve_runs_api import _tiny_fashion

LENET = "6c5w1s0p 2w2s 16c5w1s0p 2w2s (Flat)400 120fc 84fc 10fc"


def test_no_registered_name_reads_as_notation():
    # is_notation needs neither the registry nor torch because of this
    assert [n for n in list_models() if network.is_notation(n)] == []
    assert network.is_notation(LENET) and network.is_notation("Input->(Conv)6c5w1s0p->10fc")
    assert network.is_notation("6c5w1s0p 2w2s 10xx")  # malformed, but notation: its error gets a caret
    assert not network.is_notation("resnt20")  # a misspelt name stays a name (with suggestions)


def test_default_run_names_are_file_names():
    assert network.default_run_name("resnet20") == "resnet20"
    assert network.default_run_name(LENET) == "6c5w1s0p_2w2s_16c5w1s0p_2w2s_Flat_400_120fc_84fc_10fc"
    long = " ".join(["8c3w1s1p"] * 30) + " (Flat) 10fc"
    name = network.default_run_name(long)
    assert len(name) <= network.MAX_NAME + 9 and name != network.default_run_name(long.replace("8c", "9c", 1))


def test_the_output_must_match_the_classes_and_the_input_must_fit():
    kw = network.notation_kwargs(LENET, channels=1, num_classes=10, data_side=28, side=32)
    assert kw == {"num_classes": 10, "in_channels": 1, "input_size": 32}
    network.check_notation(LENET, **kw)
    with pytest.raises(ConfigError, match="output is 84 values, but the data has 10 classes"):
        network.check_notation("6c5w1s0p 2w2s (Flat) 84fc", num_classes=10, in_channels=1, input_size=28)
    with pytest.raises(NotationError):  # (Flat)400 at 28x28 is 16x4x4 = 256
        network.check_notation(LENET, **{**kw, "input_size": 28})
    tagged = network.notation_kwargs("Input(3x32x32) 6c5w1s0p (Flat) 10fc", channels=1, num_classes=10, data_side=28)
    assert tagged["in_channels"] == 3 and tagged["input_size"] == 32  # the tag wins over the data


def _cli(*args, cwd, env):
    return subprocess.run([sys.executable, "-m", "convzoo", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, fashion_mnist_dir):
    import os

    base = tmp_path_factory.mktemp("notation")
    _tiny_fashion(base / "data", fashion_mnist_dir, 200, 100)
    return base, {**os.environ, "CONVZOO_DATA": str(base / "data"), "OMP_NUM_THREADS": "1"}


def test_train_eval_resume_and_viz_a_notation_network(tiny):
    base, env = tiny
    r = _cli("train", LENET, "--data", "fashion-mnist", "--epochs", "1", "--batch-size", "50", "--input-size", "32",
             "--threads", "1", cwd=base, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    run = base / "runs" / "6c5w1s0p_2w2s_16c5w1s0p_2w2s_Flat_400_120fc_84fc_10fc-fashion-mnist"
    assert json.loads((run / "config.json").read_text())["model"] == LENET
    summary = json.loads((run / "summary.json").read_text())
    assert summary["params"] == 61_706  # LeNet-5 at 1x32x32 with 10 classes (the lecture's count)
    from convzoo.train import load_checkpoint

    model, ckpt = load_checkpoint(run)
    assert ckpt["model_name"] == LENET and ckpt["model_kwargs"] == {"num_classes": 10, "in_channels": 1, "input_size": 32}
    assert sum(p.numel() for p in model.parameters()) == 61_706
    r = _cli("eval", str(run), cwd=base, env=env)
    assert r.returncode == 0 and f"top-1 {summary['test_top1']:.2f}%" in r.stdout, r.stdout + r.stderr
    r = _cli("train", LENET, "--data", "fashion-mnist", "--epochs", "2", "--batch-size", "50", "--input-size", "32",
             "--threads", "1", "--resume", cwd=base, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "summary.json").read_text())["epochs_done"] == 2
    r = _cli("viz", "filters", str(run), "--out", str(base / "f.png"), cwd=base, env=env)
    assert r.returncode == 0 and (base / "f.png").stat().st_size > 0, r.stderr


@pytest.mark.parametrize(
    "model,needle",
    [("6c5w1s0p 2w2s (Flat) 84fc", "the network's output is 84 values, but the data has 10 classes"),
     ("6c5w1s0p 2w2s 120fc", "write (Flat) before it"),
     ("6c5w1s0p 2w2s 10xx", "^"),
     ("resnt20", "did you mean resnet20")],
)  # fmt: skip
def test_a_network_that_cannot_train_is_one_message_and_no_folder(tiny, model, needle):
    base, env = tiny
    out = base / "bad"
    r = _cli("train", model, "--data", "fashion-mnist", "--epochs", "1", "--out", str(out), cwd=base, env=env)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()  # nothing left behind
