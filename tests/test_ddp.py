"""DDP through torchrun: two CPU processes (gloo) with per-rank batch B/2 end with the same
weights as one process with batch B (LeNet-5 has no batch norm, so no per-rank statistics)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from test_train import write_fake_fashion_mnist

STEPS = 6


def _args(data: Path, out: Path) -> list[str]:
    return [
        "-m", "convzoo", "train", "lenet5", "--data", "fashion-mnist", "--data-dir", str(data), "--epochs", "2",
        "--batch-size", "32", "--lr", "0.05", "--augment", "standard", "--max-steps", str(STEPS), "--deterministic",
        "--threads", "1", "--seed", "5", "--quiet", "--out", str(out),
    ]  # fmt: skip


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_two_gloo_processes_match_one_process(tmp_path):
    data = write_fake_fashion_mnist(tmp_path / "data", n_train=256, n_test=64)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = subprocess.Popen(torchrun + _args(data, tmp_path / "ddp"), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    one = subprocess.run([sys.executable] + _args(data, tmp_path / "one"), env=env, capture_output=True, text=True)
    out, err = ddp.communicate(timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    assert ddp.returncode == 0, (out + err)[-3000:]

    a = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    assert a["step"] == b["step"] == STEPS
    assert len(b["rng"]) == 2  # one RNG state per rank
    for k, v in a["model"].items():
        assert torch.allclose(v, b["model"][k], rtol=1e-4, atol=1e-6), k
    sa = json.loads((tmp_path / "one" / "summary.json").read_text())
    sb = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert sb["world_size"] == 2 and sa["world_size"] == 1
    # the test metrics are all-reduced over the two halves of the test set
    assert abs(sa["test_top1"] - sb["test_top1"]) <= 100 / 64 + 1e-9
    assert abs(sa["test_loss"] - sb["test_loss"]) < 1e-3
    # only rank 0 wrote: one metrics file with one epoch line
    epochs = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "epoch" for r in epochs) == 1
