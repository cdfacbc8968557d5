"""Environment errors are messages (issue 15): a full disk during training is one line and
exit 2 with earlier checkpoints intact; notation and option limits refuse early and briefly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import convzoo
from convzoo.cli import main
from convzoo.errors import ConfigError, NotationError
from convzoo.train import TrainConfig

from test_train import write_fake_fashion_mnist


def test_huge_notation_is_refused_fast_with_a_short_message():
    text = "Input->" + "->".join(["(Conv)8c3w1s1p"] * 70_000) + "->(Output)"  # ~1 MB
    start = time.perf_counter()
    with pytest.raises(NotationError) as info:
        convzoo.from_spec(text, input_size=(1, 28, 28))
    assert time.perf_counter() - start < 1.0 and len(str(info.value)) < 400
    for bad in ("Input->(Conv)" + "9" * 5000 + "c5w->(Output)", "Input->(Conv)6c5w1s0p*" + "9" * 5000,
                "Input->" + "(Conv)6c5w1s0p->" * 50 + "(Conv)6c5w1s0q->" + "(Conv)6c5w1s0p->" * 50 + "(Output)"):
        with pytest.raises(NotationError) as info:
            convzoo.from_spec(bad)
        assert len(str(info.value)) < 600, len(str(info.value))


def test_a_10000_layer_spec_round_trips():
    text = "Input->" + "->".join(["(Conv)2c3w1s1p"] * 10_000) + "->(Output)"
    model = convzoo.from_spec(text, input_size=(1, 8, 8))
    again = convzoo.from_spec(convzoo.to_spec(model), input_size=(1, 8, 8))
    assert sum(1 for _ in again.modules()) == sum(1 for _ in model.modules())


def test_input_size_and_threads_are_bounded():
    with pytest.raises(ConfigError, match="input_size 100,000 is above 4,096"):
        TrainConfig(model="lenet5", data="mnist", input_size=100_000).validate()
    with pytest.raises(ConfigError, match="threads 1000 is more than"):
        TrainConfig(model="lenet5", data="mnist", threads=1000).validate()


def _tmpfs(size: str) -> Path:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root: the full-disk test cannot run here")
    mnt = Path("/tmp") / f"convzoo-full-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True)
    if proc.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip()[:100]}): full-disk test skipped")
    return mnt


def test_a_full_disk_is_one_line_and_earlier_checkpoints_survive(tmp_path):
    data = write_fake_fashion_mnist(tmp_path / "fm", n_train=384, n_test=128)
    mnt = _tmpfs("700k")
    try:
        run = mnt / "run"
        cmd = [sys.executable, "-m", "convzoo", "train", "lenet5", "--data", "fashion-mnist", "--data-dir", str(data),
               "--epochs", "2", "--batch-size", "32", "--augment", "none", "--threads", "1", "--quiet",
               "--checkpoint-every", "3", "--out", str(run)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
        assert "cannot write" in proc.stderr and "No space left on device" in proc.stderr
        from convzoo.train.checkpoint import CheckpointManager

        found = CheckpointManager(run / "checkpoints").latest(resumable=True)
        assert found is not None and found[1]["step"] == 3  # the earlier checkpoint is intact
        # once the fault is gone (more room), resume finishes the run
        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
        done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


def test_a_read_only_output_folder_is_one_line(tmp_path, capsys):
    mnt = _tmpfs("1m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        assert main(["viz", "arch", "lenet5", "--out", str(mnt / "a.svg")]) == 2
        err = capsys.readouterr().err
        assert "Read-only file system" in err and err.count("\n") == 1
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        mnt.rmdir()


# -- viz, report, experiment, export: the same one line on a full or read-only folder --------
def _full_tmpfs() -> Path:
    """A small tmpfs filled to the last byte (a filler file written until ENOSPC)."""
    mnt = _tmpfs("256k")
    with open(mnt / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        except OSError:
            pass
    return mnt


def _read_only_tmpfs() -> Path:
    mnt = _tmpfs("1m")
    (mnt / "out").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    return mnt


def _release(mnt: Path) -> None:
    subprocess.run(["umount", str(mnt)], check=False)
    mnt.rmdir()


def _one_line(capsys, command: str, reason: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err[-2000:]
    assert err.startswith(f"convzoo {command}: error: cannot write") and reason in err, err
    return err


@pytest.fixture()
def fashion_mnist_env(tmp_path, monkeypatch):
    """A small synthetic Fashion-MNIST found through $CONVZOO_DATA (the experiment trains on it)."""
    data = write_fake_fashion_mnist(tmp_path / "fm", n_train=64, n_test=32)
    monkeypatch.setenv("CONVZOO_DATA", str(data))
    return data


_COMMANDS = {
    "viz": lambda out: ["viz", "filters", "lenet5", "--random", "--out", str(out / "f.png")],
    "report": lambda out: ["report", "lenet5", "--out", str(out / "lenet5.html")],
    "export": lambda out: ["export", "lenet5", "--out", str(out / "lenet5.onnx")],
    # the smallest shipped experiment (2 LeNet runs, smoke scale) on the fixture's 64 images
    "experiment": lambda out: ["experiment", "lenet", "--scale", "smoke", "--quiet", "--out", str(out / "exp")],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_full_disk_is_one_line_for_every_writer(command, capsys, fashion_mnist_env):
    mnt = _full_tmpfs()
    try:
        assert main(_COMMANDS[command](mnt)) == 2
        _one_line(capsys, command, "No space left on device")
    finally:
        _release(mnt)


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_read_only_folder_is_one_line_for_every_writer(command, capsys, fashion_mnist_env):
    mnt = _read_only_tmpfs()
    try:
        assert main(_COMMANDS[command](mnt / "out")) == 2
        _one_line(capsys, command, "Read-only file system")
    finally:
        _release(mnt)
