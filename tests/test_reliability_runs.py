"""Nothing lost, nothing misleading (issue 15): run-folder locking, verified checkpoints, the
non-finite guard on weights, stale temporary files, --max-steps resumes, SIGTERM during the
final evaluation, and resume naming the checkpoints it skips."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from convzoo.cli import main
from convzoo.errors import CheckpointError, NonFiniteLossError
from convzoo.train import TrainConfig, train
from convzoo.train.checkpoint import CheckpointManager, atomic_save, read_checkpoint
from convzoo.train.runlock import RunFolderBusyError, RunLock

from test_train import write_fake_fashion_mnist

CONVZOO = [sys.executable, "-m", "convzoo"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fm"), n_train=384, n_test=128)


def _config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(model="lenet5", data="fashion-mnist", data_dir=str(data), epochs=1, batch_size=32, threads=1,
                augment="none", log_every=4, out=str(out))  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return CONVZOO + ["train", "lenet5", "--data", "fashion-mnist", "--data-dir", str(data), "--batch-size", "16",
                      "--augment", "none", "--threads", "1", "--quiet", "--out", str(out), *extra]  # fmt: skip


# -- the run folder's lock -------------------------------------------------------------------


def test_lock_is_exclusive_and_released(tmp_path):
    with RunLock(tmp_path / "run"):
        owner = (tmp_path / "run" / ".lock").read_text()
        assert f"pid={os.getpid()}" in owner
        with pytest.raises(RunFolderBusyError, match=f"PID {os.getpid()}"):
            RunLock(tmp_path / "run").acquire()
    assert not (tmp_path / "run" / ".lock").exists()  # the folder looks as before
    with RunLock(tmp_path / "run"):  # free again
        pass


def test_a_second_trainer_resume_or_overwrite_is_refused_while_a_run_lives(tmp_path, data):
    run = tmp_path / "run"
    first = subprocess.Popen(_train_cmd(data, run, "--epochs", "100000", "--log-every", "2"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((run / "checkpoints").glob("step-*.pt")):
            assert first.poll() is None, first.communicate()[1][-2000:]
            time.sleep(0.05)
        for extra in ([], ["--overwrite"], ["--resume"]):
            proc = subprocess.run(_train_cmd(data, run, "--epochs", "100000", *extra), capture_output=True, text=True)
            assert proc.returncode == 2, (extra, proc.stderr[-2000:])
            assert f"in use by another convzoo process (PID {first.pid}" in proc.stderr, proc.stderr
            assert "Traceback" not in proc.stderr
            assert list((run / "checkpoints").glob("step-*.pt")), "the live run's checkpoints were deleted"
        assert first.poll() is None, "the first run did not survive"
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err[-2000:]
    # the hint is a command that works as typed
    hint = out.split("continue with: ")[1].strip()
    assert hint == f"convzoo train --resume --out {run}"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if r["kind"] == "step"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)), "metrics of two runs interleaved"


def test_a_stale_lock_file_of_a_dead_process_is_taken_over(tmp_path, monkeypatch):
    # the fallback where flock is missing: the file is the lock, and a dead PID makes it stale
    import socket

    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ".lock").write_text(f"pid={int(dead.stdout)} host={socket.gethostname()} since=2026-01-01T00:00:00\n")
    lock = RunLock(run)
    lock._acquire_exclusive_file()
    assert f"pid={os.getpid()}" in (run / ".lock").read_text()
    with pytest.raises(RunFolderBusyError, match="in use"):
        RunLock(run)._acquire_exclusive_file()  # a live owner is not stale
    lock.release()


# -- checkpoints: integrity, schema, non-finite, temporaries -----------------------------------


def _payload(step: int, seed: int = 0) -> dict:
    from convzoo.registry import create_model

    torch.manual_seed(seed)
    model = create_model("lenet5", num_classes=10, in_channels=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 32, 32)).sum().backward()
    opt.step()
    return {"model_name": "lenet5", "model_kwargs": {"num_classes": 10, "in_channels": 1},
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "epoch": 0,
            "rng": [{"torch": torch.get_rng_state()}]}  # fmt: skip


def _tensors(tree, prefix=""):
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _tensors(v, f"{prefix}.{k}")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _tensors(v, f"{prefix}.{i}")


def test_single_bit_flips_never_load_as_a_changed_checkpoint(tmp_path):
    """A sample of the bit-flip scan (benchmarks/reliability_probes.py runs many more)."""
    path = tmp_path / "c.pt"
    atomic_save(_payload(3), path)
    good = path.read_bytes()
    reference = dict(_tensors(read_checkpoint(path)))
    rng = random.Random(15)
    refused = unchanged = 0
    for _ in range(60):
        bit = rng.randrange(len(good) * 8)
        damaged = bytearray(good)
        damaged[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(damaged))
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as err:
            assert str(path) in str(err) and len(str(err)) < 400
            refused += 1
            continue
        loaded = dict(_tensors(ckpt))
        assert loaded.keys() == reference.keys() and all(torch.equal(loaded[k], reference[k]) for k in loaded), \
            f"bit {bit} changed a tensor and loaded silently"  # fmt: skip
        unchanged += 1
    assert refused >= 50  # nearly every byte of the file is covered by a CRC


def test_eval_refuses_a_damaged_checkpoint_with_one_message(tmp_path, capsys):
    path = tmp_path / "c.pt"
    atomic_save(_payload(3), path)
    raw = bytearray(path.read_bytes())
    i = raw.index(b"data/0") + 200  # inside the first tensor's bytes
    raw[i] ^= 0x10
    path.write_bytes(bytes(raw))
    assert main(["eval", str(path), "--data", "fashion-mnist"]) == 2
    err = capsys.readouterr().err
    assert "is damaged" in err and "CRC-32" in err and "Traceback" not in err


@pytest.mark.parametrize("broken", ["model_none", "no_step", "empty_optimizer", "step_text"])
def test_schema_broken_checkpoints_are_checkpoint_errors(tmp_path, data, broken):
    run = tmp_path / "run"
    payload = _payload(3)
    if broken == "model_none":
        payload["model"] = None
    elif broken == "no_step":
        del payload["step"]
    elif broken == "empty_optimizer":
        payload["optimizer"] = {}
    else:
        payload["step"] = "three"
    path = run / "checkpoints" / "step-00000003.pt"
    atomic_save(payload, path)
    with pytest.raises(CheckpointError, match="not a convzoo checkpoint|cannot be resumed"):
        train(_config(data, run, resume=str(path)), progress=False)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_a_refused_pickle_global_is_named_without_suggesting_weights_only_false(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model_name": "lenet5", "model_kwargs": {}, "model": {"w": torch.zeros(1)}, "x": _Evil()}, path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert "refusing to load" in str(info.value) and ".system" in str(info.value)
    assert "weights_only" not in str(info.value)


def test_non_finite_weights_are_never_checkpointed_nor_named_good(tmp_path, data):
    run = tmp_path / "run"
    cfg = _config(data, run, lr=3e38, momentum=0.0, weight_decay=100.0, max_steps=1, epochs=3)
    with pytest.raises(NonFiniteLossError, match="weights or optimizer state became NaN or infinite"):
        train(cfg, progress=False)
    assert not list((run / "checkpoints").glob("*.pt")) if (run / "checkpoints").exists() else True
    # a finite run, then a step that blows the weights up: the named checkpoint is finite
    run2 = tmp_path / "run2"
    train(_config(data, run2, max_steps=4, checkpoint_every=2), progress=False)
    with pytest.raises(NonFiniteLossError) as info:
        train(_config(data, run2, resume="auto", max_steps=6, lr=3e38, momentum=0.0, weight_decay=100.0),
              progress=False)  # fmt: skip
    named = str(info.value).split("the last good checkpoint is ")[1].split(".")[0] + ".pt"
    ckpt = read_checkpoint(named)
    assert all(torch.isfinite(t).all() for _, t in _tensors(ckpt["model"]) if t.is_floating_point())


def test_stale_temporaries_are_removed_when_the_run_folder_is_opened(tmp_path, data):
    run = tmp_path / "run"
    train(_config(data, run, max_steps=3), progress=False)
    litter = [run / "checkpoints" / ".step-00000099.pt.tmp-4242", run / "checkpoints" / ".last.pt.tmp-4243",
              run / ".config.json.tmp-4244", run / "metrics.jsonl.tmp"]  # fmt: skip
    for p in litter:
        p.write_bytes(b"half a file")
    train(_config(data, run, max_steps=4, resume="auto"), progress=False)
    assert not any(p.exists() for p in litter)


def test_resuming_a_max_steps_run_adds_no_step(tmp_path, data):
    run = tmp_path / "run"
    train(_config(data, run, max_steps=5), progress=False)
    for _ in range(2):
        train(_config(data, run, max_steps=5, resume="auto"), progress=False)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["steps"] == 5
    assert CheckpointManager(run / "checkpoints").latest()[1]["step"] == 5


def test_sigterm_during_the_final_evaluation_stops_the_run(tmp_path, data, monkeypatch):
    import convzoo.evaluate as zeval

    real = zeval.evaluate
    calls = []

    def evaluate_then_sigterm(*a, **kw):
        calls.append(1)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the evaluation runs
        return real(*a, **kw)

    monkeypatch.setattr(zeval, "evaluate", evaluate_then_sigterm)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(_config(data, run, epochs=1), progress=False)
    assert calls == [1]
    steps = 384 // 32
    assert CheckpointManager(run / "checkpoints").latest()[1]["step"] == steps  # the checkpoint is kept
    assert not (run / "summary.json").exists()
    monkeypatch.setattr(zeval, "evaluate", real)
    train(_config(data, run, epochs=1, resume="auto"), progress=False)
    assert json.loads((run / "summary.json").read_text())["steps"] == steps


def test_resume_names_the_damaged_checkpoint_it_skips(tmp_path, data):
    run = tmp_path / "run"
    cmd = _train_cmd(data, run, "--epochs", "1", "--checkpoint-every", "4", "--max-steps", "8")
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    newest = run / "checkpoints" / "step-00000008.pt"
    raw = bytearray(newest.read_bytes())
    raw[raw.index(b"data/0") + 300] ^= 1
    newest.write_bytes(bytes(raw))  # last.pt is the same file: damaged too
    proc = subprocess.run(cmd[:-2] + ["--max-steps", "10", "--resume"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"warning: skipping {newest}:" in proc.stderr and "CRC-32" in proc.stderr
    assert proc.stderr.count("warning: skipping") == 1  # last.pt, a link to the same bytes, is not repeated
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert json.loads((run / "summary.json").read_text())["steps"] == 10 and recs


def test_resume_of_a_missing_run_says_so(tmp_path, capsys):
    assert main(["train", "--resume", "--out", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "there is no run in" in err and "no model given" not in err
    assert not (tmp_path / "nothing").exists()


# -- kill at random moments ------------------------------------------------------------------


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "checkpoints" / "last.pt")["model"]


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, data):
    """A few kills here; benchmarks/reliability_probes.py --kills N runs many."""
    common = ["--epochs", "1", "--deterministic", "--checkpoint-every", "4", "--seed", "5", "--log-every", "5"]
    ref = tmp_path / "ref"
    assert subprocess.run(_train_cmd(data, ref, *common), capture_output=True).returncode == 0
    run = tmp_path / "killed"
    rng = random.Random(1515)
    kills = 0
    while kills < 2:
        started = list((run / "checkpoints").glob("step-*.pt")) if (run / "checkpoints").is_dir() else []
        extra = ["--resume"] if started else ["--overwrite"]
        before = {p.name for p in started}
        proc = subprocess.Popen(_train_cmd(data, run, *common, *extra), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 120
        # wait until this process has written a checkpoint of its own, then kill at a random moment
        while proc.poll() is None and time.monotonic() < deadline:
            now = {p.name for p in (run / "checkpoints").glob("step-*.pt")} if (run / "checkpoints").is_dir() else set()
            if now - before:
                break
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.6))
        if proc.poll() is not None:
            break  # finished before the kill
        proc.kill()
        proc.wait()
        kills += 1
    proc = subprocess.run(_train_cmd(data, run, *common, "--resume"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert kills >= 1
    a, b = _final_weights(ref), _final_weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = ("images_per_second", "time", "wall_seconds")
    ma = [{k: v for k, v in json.loads(x).items() if k not in drop} for x in (ref / "metrics.jsonl").read_text().splitlines()]
    mb = [{k: v for k, v in json.loads(x).items() if k not in drop} for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert ma == mb
