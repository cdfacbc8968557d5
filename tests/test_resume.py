"""Exact resume: a run killed with SIGKILL after a checkpoint and resumed ends with the same
metrics and weights as an uninterrupted run (deterministic mode, same machine)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from test_train import write_fake_fashion_mnist

KILL_AFTER_STEP = 10


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "convzoo", "train", "lenet5", "--data", "fashion-mnist", "--data-dir", str(data),
        "--epochs", "2", "--batch-size", "16", "--lr", "0.05", "--schedule", "cosine", "--warmup-epochs", "0.5",
        "--augment", "standard", "--ema", "0.9", "--label-smoothing", "0.1", "--deterministic", "--threads", "1",
        "--seed", "3", "--checkpoint-every", "1", "--keep", "2", "--log-every", "7", "--quiet", "--out", str(out),
        *extra,
    ]  # fmt: skip


def _steps_written(folder: Path) -> int:
    best = -1
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith("step-") and p.name.endswith(".pt"):
                best = max(best, int(p.name[5:-3]))
    return best


def _metrics(run: Path) -> list[dict]:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in recs:  # timings differ between runs; everything else must not
        for key in ("images_per_second", "time", "wall_seconds"):
            r.pop(key, None)
    return recs


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    data = write_fake_fashion_mnist(tmp_path / "data", n_train=640, n_test=128)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the reference run and the run to be killed start together (two cores)
    ref = subprocess.Popen(_cmd(data, tmp_path / "ref"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = subprocess.Popen(_cmd(data, tmp_path / "cut"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ckdir = tmp_path / "cut" / "checkpoints"
    deadline = time.monotonic() + 240
    while _steps_written(ckdir) < KILL_AFTER_STEP and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.003)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "cut" / "summary.json").exists()
    killed_at = _steps_written(ckdir)
    assert KILL_AFTER_STEP <= killed_at < 80

    resumed = subprocess.run(_cmd(data, tmp_path / "cut", "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    out, err = ref.communicate()
    assert ref.returncode == 0, err.decode()[-2000:]

    a = json.loads((tmp_path / "ref" / "summary.json").read_text())
    b = json.loads((tmp_path / "cut" / "summary.json").read_text())
    for key in ("test_top1", "test_top5", "test_loss", "best_test_top1", "steps", "epochs_done"):
        assert a[key] == b[key], key
    assert _metrics(tmp_path / "ref") == _metrics(tmp_path / "cut")
    ca = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)
    cb = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert ca["step"] == cb["step"] == 80
    for part in ("model", "ema"):
        for k, v in ca[part].items():
            assert torch.equal(v, cb[part][k]), (part, k)
    for k, v in ca["optimizer"]["state"].items():
        assert torch.equal(v["momentum_buffer"], cb["optimizer"]["state"][k]["momentum_buffer"])


def _dropout_net() -> torch.nn.Module:
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.Linear(576, 10))


def test_resume_restores_the_global_rng_for_dropout(tmp_path):
    """Any nn.Module; dropout draws from torch's global RNG, so a resume that failed to
    restore it would diverge. Stop at step 7 (max_steps), resume to 20, compare with 20."""
    from convzoo.train import TrainConfig, train

    data = write_fake_fashion_mnist(tmp_path / "data", n_train=256, n_test=64)
    base = dict(model="dropnet", data="fashion-mnist", data_dir=str(data), epochs=2, batch_size=16, lr=0.05,
                augment="none", deterministic=True, seed=1, log_every=5)  # fmt: skip
    train(TrainConfig(**base, max_steps=20, out=str(tmp_path / "ref")), progress=False, model=_dropout_net())
    train(TrainConfig(**base, max_steps=7, out=str(tmp_path / "cut")), progress=False, model=_dropout_net())
    train(TrainConfig(**base, max_steps=20, out=str(tmp_path / "cut"), resume="auto"), progress=False,
          model=_dropout_net())  # fmt: skip
    assert not torch.are_deterministic_algorithms_enabled()  # train() puts process-wide settings back
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == 20 and a["model_name"] == "dropnet"
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
