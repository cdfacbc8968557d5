"""Checkpoints: atomic writes, last K + best, safe loading, clear errors for bad files."""

from __future__ import annotations

import os
import pickle
import random

import pytest
import torch

from convzoo.errors import CheckpointError
from convzoo.registry import create_model
from convzoo.train import load_checkpoint
from convzoo.train.checkpoint import CheckpointManager, atomic_save, check_same_model, read_checkpoint
from convzoo.train.runtime import rng_state, set_rng_state


def _payload(step: int) -> dict:
    model = create_model("lenet5", num_classes=10, in_channels=1)
    return {
        "model_name": "lenet5",
        "model_kwargs": {"num_classes": 10, "in_channels": 1},
        "model": model.state_dict(),
        "step": step,
        "epoch": 0,
        "classes": [str(i) for i in range(10)],
        "input_size": 32,
    }


def test_manager_keeps_last_k_and_links_last_and_best(tmp_path):
    m = CheckpointManager(tmp_path / "ck", keep=2)
    for step in (1, 2, 3, 4):
        m.save(_payload(step), step, best=step == 2)
    names = sorted(p.name for p in (tmp_path / "ck").iterdir())
    assert names == ["best.pt", "last.pt", "step-00000003.pt", "step-00000004.pt"]  # no temp files left
    assert read_checkpoint(tmp_path / "ck" / "last.pt")["step"] == 4
    assert read_checkpoint(tmp_path / "ck" / "best.pt")["step"] == 2
    path, ckpt = m.latest()
    assert ckpt["step"] == 4 and path.name == "step-00000004.pt"


def test_latest_skips_a_truncated_newest_file(tmp_path):
    m = CheckpointManager(tmp_path, keep=3)
    m.save(_payload(1), 1)
    m.save(_payload(2), 2)
    newest = tmp_path / "step-00000002.pt"
    data = newest.read_bytes()
    os.unlink(tmp_path / "last.pt")
    newest.write_bytes(data[: len(data) // 2])
    assert m.latest()[1]["step"] == 1


def test_load_checkpoint_rebuilds_the_model(tmp_path):
    payload = _payload(7)
    atomic_save(payload, tmp_path / "a.pt")
    model, ckpt = load_checkpoint(tmp_path / "a.pt")
    assert ckpt["step"] == 7 and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, payload["model"][k])
    # a run folder works too
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    atomic_save(payload, tmp_path / "run" / "checkpoints" / "last.pt")
    assert load_checkpoint(tmp_path / "run")[1]["step"] == 7


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "missing", "not_a_checkpoint"])
def test_damaged_files_are_checkpoint_errors(tmp_path, damage):
    path = tmp_path / "c.pt"
    atomic_save(_payload(1), path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a zip at all" * 10)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "missing":
        path.unlink()
    else:
        torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "c.pt" in str(err.value)


def test_loading_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"model_name": "lenet5", "model_kwargs": {}, "model": Evil()}, fh, protocol=2)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not marker.exists()


def test_other_model_or_shape_is_a_checkpoint_error(tmp_path):
    payload = _payload(1)
    with pytest.raises(CheckpointError, match="lenet5"):
        check_same_model(payload, "alexnet", payload["model_kwargs"])
    with pytest.raises(CheckpointError, match="num_classes"):
        check_same_model(payload, "lenet5", {"num_classes": 5, "in_channels": 1})
    payload["model_kwargs"] = {"num_classes": 5, "in_channels": 1}  # weights for 10 classes
    atomic_save(payload, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="holds model 'lenet5'"):
        load_checkpoint(tmp_path / "x.pt", model_name="resnet20")


def test_rng_state_survives_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(3)
    random.seed(3)
    atomic_save({"rng": rng_state()}, tmp_path / "r.pt")
    expected = (torch.rand(4), random.random())
    state = torch.load(tmp_path / "r.pt", weights_only=True)["rng"]
    torch.manual_seed(99)
    random.seed(99)
    set_rng_state(state)
    assert torch.equal(torch.rand(4), expected[0]) and random.random() == expected[1]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "not_a_checkpoint", "evil"])
def test_viz_reads_checkpoints_through_the_one_loader(tmp_path, damage):
    """viz gets the trainer's checks and messages, word for word, for damaged and unsafe files."""
    from convzoo.viz._common import load_checkpoint as viz_load

    path = tmp_path / "c.pt"
    atomic_save(_payload(1), path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a zip at all" * 10)
    elif damage == "not_a_checkpoint":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        torch.save({"model_name": "lenet5", "model_kwargs": {}, "model": {"w": random.Random(0)}}, path)
    with pytest.raises(CheckpointError) as train_err:
        load_checkpoint(path)
    with pytest.raises(CheckpointError) as viz_err:
        viz_load(path)
    assert str(viz_err.value) == str(train_err.value) and "c.pt" in str(viz_err.value)
    if damage == "evil":
        assert "refusing to load" in str(viz_err.value)


def test_build_checkpoint_writes_the_documented_layout():
    from convzoo.train.checkpoint import FORMAT, LAYOUT, RUN_KEYS, STATE_KEYS, build_checkpoint

    run = {k: k for k in RUN_KEYS}
    state = {k: k for k in STATE_KEYS}
    ckpt = build_checkpoint(run, state)
    assert list(ckpt) == list(LAYOUT) and ckpt["format"] == FORMAT == 1
    assert LAYOUT[:3] == ("format", "model_name", "model_kwargs") and set(LAYOUT) == {"format", *RUN_KEYS, *STATE_KEYS}
    with pytest.raises(ValueError, match="exactly"):
        build_checkpoint(run, {k: v for k, v in state.items() if k != "rng"})
    with pytest.raises(ValueError, match="exactly"):
        build_checkpoint(run, {**state, "extra": 1})
