"""The trainer's parts: config, schedules, optimizer groups, losses, EMA, and short real runs."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest
import torch
from torch import nn

from convzoo.errors import CheckpointError, ConfigError, ConvzooError, NonFiniteLossError
from convzoo.train import TrainConfig
from convzoo.train.loop import compute_loss, train
from convzoo.train.optim import build_optimizer, parameter_groups
from convzoo.train.runtime import make_scaler
from convzoo.train.schedules import Schedule
from convzoo.train.state import EMA, TrainState


def write_fake_fashion_mnist(folder: Path, n_train: int = 512, n_test: int = 256, seed: int = 0) -> Path:
    """Fashion-MNIST-format IDX files (gzip) of a learnable synthetic task: class k is a
    bright horizontal band at rows 2k..2k+5 plus noise."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (n,), generator=g)
        images = torch.randint(0, 60, (n, 28, 28), generator=g)
        for i, k in enumerate(labels.tolist()):
            images[i, 2 * k + 2 : 2 * k + 7, 3:25] += 150
        return images.clamp(0, 255).to(torch.uint8), labels.to(torch.uint8)

    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = make(n)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">IIII", 2051, n, 28, 28) + x.numpy().tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(struct.pack(">II", 2049, n) + y.numpy().tobytes())
    return folder


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    return write_fake_fashion_mnist(tmp_path_factory.mktemp("fmnist"))


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# -- config -------------------------------------------------------------------------------


def test_unknown_config_key_names_it_and_the_valid_ones():
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({"model": "lenet5", "learning_rate": 0.1})
    msg = str(err.value)
    assert "'learning_rate'" in msg and "lr" in msg and "batch_size" in msg


def test_toml_config_and_type_errors(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('model = "lenet5"\ndata = "fashion-mnist"\nepochs = 3\nlr = 1\nmilestones = [1, 2]\n')
    cfg = TrainConfig.from_toml(p).validate()
    assert (cfg.epochs, cfg.lr, cfg.milestones) == (3, 1.0, [1, 2]) and isinstance(cfg.lr, float)
    p.write_text('model = "lenet5"\nepochs = "three"\n')
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig.from_toml(p)
    p.write_text("model = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        TrainConfig.from_toml(p)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"schedule": "linear"}, "schedule"),
        ({"milestones": [5, 2], "epochs": 10}, "milestones"),
        ({"ema": 1.5}, "ema"),
        ({"momentum": 1.0}, "momentum"),
        ({"amp": "fp8"}, "amp"),
    ],
)
def test_bad_values_are_config_errors(change, field):
    cfg = TrainConfig(model="lenet5", data="fashion-mnist", **change)
    with pytest.raises(ConfigError, match=field):
        cfg.validate()


def test_run_dir_rules():
    assert TrainConfig(model="lenet5", data="fashion-mnist").run_dir() == Path("runs/lenet5-fashion-mnist")
    assert TrainConfig(model="m", data="d", out="x/demo").run_dir() == Path("x/demo")
    assert TrainConfig(model="m", data="d", out="x", name="a").run_dir() == Path("x/a")
    assert TrainConfig(model="m", data="d", name="a").run_dir() == Path("runs/a")


def test_field_help_is_written_once_and_the_cli_shows_it():
    """Every TrainConfig field carries its help; each flag of `convzoo train` shows exactly
    that text (argparse's %% escaping undone), followed by the default where there is one."""
    import argparse
    import dataclasses

    from convzoo.commands.train import _FILE_ONLY, add_arguments
    from convzoo.train.config import field_help

    helps = field_help()
    assert list(helps) == [f.name for f in dataclasses.fields(TrainConfig)]
    assert all(len(text) > 5 for text in helps.values()), [k for k, v in helps.items() if len(v) <= 5]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    shown = {a.dest: a.help.replace("%%", "%") for a in parser._actions if a.dest in helps}
    assert set(shown) == set(helps) - _FILE_ONLY | {"model"}  # model: the positional MODEL
    for name, text in shown.items():
        assert text == helps[name] or text.startswith(helps[name] + " (default: "), name
    assert "50% and 75% of the epochs" in shown["milestones"]
    parser.format_help()  # every % escaped: formatting does not fail


def test_fp16_on_cpu_is_refused():
    with pytest.raises(ConfigError, match="fp16"):
        make_scaler(torch.device("cpu"), "fp16")
    assert make_scaler(torch.device("cpu"), "bf16") is None


# -- schedules ------------------------------------------------------------------------------


def test_step_schedule_divides_by_ten_at_milestones():
    s = Schedule("step", 0.1, steps_per_epoch=10, epochs=6, milestones=[2, 4])
    assert [round(s.lr(e * 10), 6) for e in range(6)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    default = Schedule("step", 1.0, steps_per_epoch=1, epochs=8)  # DenseNet's 50% / 75%
    assert [default.lr(e) for e in (3, 4, 5, 6)] == pytest.approx([1.0, 0.1, 0.1, 0.01])


def test_cosine_onecycle_warmup_shapes():
    c = Schedule("cosine", 0.2, steps_per_epoch=10, epochs=10)
    assert c.lr(0) == pytest.approx(0.2) and c.lr(50) == pytest.approx(0.1) and c.lr(100) == pytest.approx(0.0)
    o = Schedule("onecycle", 1.0, steps_per_epoch=10, epochs=10)
    assert o.lr(0) == pytest.approx(1 / 25) and o.lr(30) == pytest.approx(1.0)
    assert max(o.lr(i) for i in range(100)) == pytest.approx(1.0) and o.lr(100) < 1e-4
    w = Schedule("constant", 0.5, steps_per_epoch=4, epochs=3, warmup_epochs=1)
    assert [w.lr(i) for i in range(5)] == pytest.approx([0.125, 0.25, 0.375, 0.5, 0.5])


def test_plateau_divides_after_patience_and_round_trips():
    s = Schedule("plateau", 0.1, steps_per_epoch=5, epochs=20, patience=1)
    lowered = [s.observe(a) for a in (50, 60, 59, 58, 61, 61, 60)]
    assert lowered == [False, False, False, True, False, False, True]
    assert s.lr(0) == pytest.approx(0.001)
    t = Schedule("plateau", 0.1, steps_per_epoch=5, epochs=20, patience=1)
    t.load_state_dict(s.state_dict())
    assert t.lr(7) == s.lr(7) and t.best == 61


# -- optimizer, losses, EMA ---------------------------------------------------------------


def test_no_decay_for_norms_and_biases():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    groups = parameter_groups(model, 1e-4, no_decay_norm_bias=True)
    decayed = {id(p) for p in groups[0]["params"]}
    assert decayed == {id(model[0].weight), id(model[3].weight)}
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 4
    opt = build_optimizer(model, "sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    assert opt.param_groups[0]["nesterov"] and len(opt.param_groups) == 1
    assert isinstance(build_optimizer(model, "adamw", lr=1e-3), torch.optim.AdamW)


def test_auxiliary_losses_weighted():
    crit = nn.CrossEntropyLoss()
    y = torch.tensor([0, 1])
    main, a1, a2 = (torch.randn(2, 3) for _ in range(3))
    loss, logits = compute_loss((main, a1, a2), y, crit, 0.3)
    assert logits is main
    assert loss.item() == pytest.approx((crit(main, y) + 0.3 * (crit(a1, y) + crit(a2, y))).item(), rel=1e-6)
    plain, same = compute_loss(main, y, crit, 0.3)
    assert same is main and plain.item() == pytest.approx(crit(main, y).item())


def test_ema_moves_toward_weights():
    model = nn.Linear(2, 1)
    ema = EMA(model, 0.9)
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    assert torch.allclose(ema.module.weight, 0.9 * before + 0.1 * model.weight.detach())


def _small_state(seed: int) -> TrainState:
    """A TrainState with every part a checkpoint holds: BN buffers, dropout (RNG), momentum,
    a step schedule, an EMA and an augmenting DeviceLoader mid-epoch."""
    from convzoo.data import ArrayDataset, DeviceLoader, make_augment

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 32, 32), dtype=torch.uint8, generator=g)
    data = ArrayDataset(images, torch.arange(40) % 3, ["a", "b", "c"], "fashion-mnist")
    loader = DeviceLoader(data, 8, shuffle=True, drop_last=True, seed=seed,
                          augment=make_augment("fashion-mnist", 32, recipe="standard", train=True))  # fmt: skip
    optimizer = build_optimizer(model, "sgd", lr=0.1, momentum=0.9, weight_decay=5e-4)
    schedule = Schedule("step", 0.1, steps_per_epoch=len(loader), epochs=4, milestones=[1, 2])
    return TrainState(model, optimizer, schedule, loader, ema=EMA(model, 0.9))


def _steps(state: TrainState, n: int) -> list[float]:
    """n optimizer steps, crossing epoch ends, as the loop takes them; the losses."""
    losses = []
    state.model.train()
    while len(losses) < n:
        for x, y in state.loader:
            for group in state.optimizer.param_groups:
                group["lr"] = state.schedule.lr(state.step)
            loss = nn.functional.cross_entropy(state.model(x), y)
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            state.ema.update(state.model)
            state.step += 1
            losses.append(loss.item())
            if len(losses) == n:
                return losses
        state.epoch += 1
        state.loader.set_epoch(state.epoch)
    return losses


def test_train_state_round_trip_continues_identically(tmp_path):
    """state_dict -> (weights_only file) -> load_state_dict into a fresh state: the next steps
    are bit-identical to those of the state that was saved."""
    from convzoo.train.checkpoint import atomic_save

    state = _small_state(seed=1)
    _steps(state, 7)  # mid-epoch (5 batches an epoch), after a schedule milestone
    state.best_test_top1, state.window = 50.0, [1.0, 2.0, 3.0]
    atomic_save(state.state_dict(), tmp_path / "s.pt")
    expected = _steps(state, 9)

    other = _small_state(seed=2)  # other initial weights, data order, augmentation draws
    _steps(other, 3)
    other.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert (other.step, other.epoch, other.best_test_top1, other.window) == (7, 1, 50.0, [1.0, 2.0, 3.0])
    assert other.loader.state_dict() == {"epoch": 1, "position": 2, "seed": 1}
    assert _steps(other, 9) == expected
    for a, b in zip([*state.model.state_dict().values(), *state.ema.state_dict().values()],
                    [*other.model.state_dict().values(), *other.ema.state_dict().values()]):  # fmt: skip
        assert torch.equal(a, b)


def test_train_state_resume_names_the_file_of_a_checkpoint_that_does_not_fit():
    state = _small_state(seed=0)
    saved = state.state_dict()
    saved["model"] = {k: v for k, v in saved["model"].items() if not k.startswith("6.")}  # no classifier
    with pytest.raises(CheckpointError, match="'runs/x/last.pt' does not fit"):
        _small_state(seed=0).resume(saved, "runs/x/last.pt")


# -- short real runs ----------------------------------------------------------------------


def test_training_lowers_the_loss_and_writes_the_run_folder(tmp_path, fake_data):
    cfg = TrainConfig(
        model="lenet5", data="fashion-mnist", data_dir=str(fake_data), epochs=2, batch_size=32, lr=0.1,
        schedule="constant", augment="none", amp="bf16", channels_last=True, ema=0.9, log_every=4, out=str(tmp_path / "run"),
    )  # fmt: skip
    run = train(cfg, progress=False)
    recs = _records(run)
    steps = [r for r in recs if r["kind"] == "step"]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert len(epochs) == 2 and steps[-1]["loss"] < steps[0]["loss"] * 0.7
    assert {"epoch", "step", "loss", "top1", "lr", "images_per_second", "time"} <= set(steps[0])
    assert {"train_loss", "train_top1", "test_loss", "test_top1", "test_top5", "lr", "wall_seconds"} <= set(epochs[0])
    summary = json.loads((run / "summary.json").read_text())
    for key in ("model", "data", "params", "macs", "epochs", "test_top1", "test_top5", "best_test_top1",
                "images_per_second", "wall_seconds", "hardware", "versions", "config"):  # fmt: skip
        assert key in summary, key
    assert summary["params"] == 61_706 and summary["test_top1"] == epochs[-1]["test_top1"] > 30
    assert json.loads((run / "config.json").read_text())["ema"] == 0.9
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"last.pt", "best.pt"}
    with pytest.raises(ConfigError, match="already holds a run"):
        train(cfg, progress=False)


def test_amp_auto_is_bf16_only_where_it_is_native_and_the_run_records_what_ran(tmp_path, fake_data, monkeypatch):
    from convzoo.train import runtime

    cpu = torch.device("cpu")
    assert runtime.resolve_amp(cpu, "bf16") == "bf16" and runtime.resolve_amp(cpu, "none") == "none"
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    assert runtime.resolve_amp(cpu, "auto") == "none"
    monkeypatch.setattr(runtime, "native_bf16", lambda device: True)
    assert runtime.resolve_amp(cpu, "auto") == "bf16"
    cfg = TrainConfig(model="lenet5", data="fashion-mnist", data_dir=str(fake_data), epochs=1, batch_size=64,
                      augment="none", amp="auto", max_steps=2, out=str(tmp_path / "auto"))  # fmt: skip
    run = train(cfg, progress=False)
    assert json.loads((run / "config.json").read_text())["amp"] == "bf16"
    assert json.loads((run / "summary.json").read_text())["config"]["amp"] == "bf16"


def test_tensorboard_events_hold_the_logged_scalars(tmp_path, fake_data):
    pytest.importorskip("tensorboard")  # in the `test` extra, so CI runs this
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrainConfig(
        model="lenet5", data="fashion-mnist", data_dir=str(fake_data), epochs=2, batch_size=64, lr=0.05,
        augment="none", log_every=2, out=str(tmp_path / "tb"),
    )  # fmt: skip
    run = train(cfg, progress=False)
    recs = _records(run)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/top1", "train/lr", "epoch/test_top1", "epoch/train_loss"} <= tags
    steps = [r for r in recs if r["kind"] == "step"]
    logged = events.Scalars("train/loss")
    assert [e.step for e in logged] == [r["step"] for r in steps]
    assert [e.value for e in logged] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    test_top1 = [e.value for e in events.Scalars("epoch/test_top1")]
    assert test_top1 == pytest.approx([r["test_top1"] for r in recs if r["kind"] == "epoch"], rel=1e-6)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, fake_data):
    cfg = TrainConfig(
        model="lenet5", data="fashion-mnist", data_dir=str(fake_data), epochs=1, batch_size=32, lr=1e8,
        momentum=0.0, augment="none", checkpoint_every=1, out=str(tmp_path / "nan"),
    )  # fmt: skip
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg, progress=False)
    assert isinstance(err.value, ConvzooError)
    msg = str(err.value)
    step = int(msg.split("at step ")[1].split()[0])
    assert step >= 2 and "last good checkpoint" in msg
    last = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert last["step"] == step - 1
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_image_folder_through_a_dataloader(tmp_path):
    """folder:PATH goes through make_folder_loader (workers=0 here); the run folder is complete."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for k, colour in enumerate(((220, 30, 30), (30, 30, 220))):
            d = tmp_path / "imgs" / split / f"class{k}"
            d.mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(colour, 20, size=(20, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{i}.png")
    cfg = TrainConfig(model="lenet5", data=f"folder:{tmp_path / 'imgs'}", epochs=2, batch_size=8, lr=0.05,
                      workers=0, checkpoint_every=2, log_every=1, out=str(tmp_path / "run"))  # fmt: skip
    run = train(cfg, progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2 * 3 and summary["test_top1"] is not None and summary["input_size"] == 32
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["classes"] == ["class0", "class1"] and ckpt["in_channels"] == 3
