"""Visualisation: every `convzoo viz` command writes a valid image for a small model or run.

Run folders are written by hand following docs/internals.md (the contract), except where a
real checkpoint is needed (filters/features of a trained run): there a two-step training
run of LeNet-5 on a few Fashion-MNIST images is made once for the module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def convzoo(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI in this process (importing torch once for the whole file), as a user would."""
    import contextlib
    import io

    from convzoo.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def assert_png(path: Path, min_side: int = 50) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    with Image.open(path) as im:
        im.load()
        assert min(im.size) >= min_side, im.size
        grey = im.convert("L")
        lo, hi = grey.getextrema()
        assert hi - lo > 50, f"{path} looks blank"


def assert_svg(path: Path) -> None:
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    assert len(list(root.iter())) > 20  # something was drawn


def fake_run(folder: Path, model: str, test_acc: list[float], train_acc: list[float], params: int, macs: int,
             steps_per_epoch: int = 10) -> Path:
    """A run folder as `convzoo train` writes it (docs/internals.md), with made-up numbers."""
    folder.mkdir(parents=True)
    lines = []
    for e, (te, tr) in enumerate(zip(test_acc, train_acc), 1):
        for k in (5, 10):
            step = (e - 1) * steps_per_epoch + k
            lines.append({"kind": "step", "epoch": e, "step": step, "loss": 1.0 / e, "top1": tr - 1 + k / 10,
                          "lr": 0.1, "images_per_second": 1000.0, "time": float(step)})
        lines.append({"kind": "epoch", "epoch": e, "step": e * steps_per_epoch, "train_loss": 1.0 / e,
                      "train_top1": tr, "test_loss": 1.1 / e, "test_top1": te, "test_top5": 99.0, "lr": 0.1,
                      "wall_seconds": 2.0 * e})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    summary = {"model": model, "data": "fashion-mnist", "params": params, "macs": macs, "epochs": len(test_acc),
               "test_top1": test_acc[-1], "test_top5": 99.0, "best_test_top1": max(test_acc),
               "images_per_second": 1000.0, "wall_seconds": 2.0 * len(test_acc), "hardware": {"cpu": "test"},
               "versions": {}, "config": {"model": model}}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "config.json").write_text(json.dumps({"model": model, "data": "fashion-mnist"}))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    base = tmp_path_factory.mktemp("runs")
    return [
        fake_run(base / "plain20", "plain20", [70, 80, 84], [72, 83, 88], 269_722, 40_000_000),
        fake_run(base / "resnet20", "resnet20", [75, 85, 90], [78, 88, 93], 272_474, 41_000_000),
        fake_run(base / "lenet5", "lenet5", [80, 86, 88], [82, 88, 90], 61_706, 416_520),
    ]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, fashion_mnist_dir) -> Path:
    """A real (tiny) LeNet-5 run: 2 steps on 64 images, so checkpoints follow the trainer's format."""
    from convzoo.train import TrainConfig, train

    out = tmp_path_factory.mktemp("trained")
    cfg = TrainConfig(model="lenet5", data="fashion-mnist", data_dir=fashion_mnist_dir, epochs=1, subset=64,
                      batch_size=32, input_size=32, augment="none", out=str(out), name="lenet5", log_every=1)
    return Path(train(cfg, progress=False))


# -- library ------------------------------------------------------------------------------
def test_curves_png_and_svg(runs, tmp_path):
    assert convzoo("viz", "curves", *map(str, runs), "--out", str(tmp_path / "c.png")).returncode == 0
    assert_png(tmp_path / "c.png")
    res = convzoo("viz", "curves", *map(str, runs[:2]), "--labels", "plain", "res", "--out", str(tmp_path / "c.svg"))
    assert res.returncode == 0, res.stderr
    assert_svg(tmp_path / "c.svg")
    assert "plain (train)" in (tmp_path / "c.svg").read_text()


def test_curve_points_follow_the_contract(runs):
    from convzoo.viz.curves import curve_points, read_run

    pts = curve_points(read_run(runs[0]))
    assert pts["test"] == ([1.0, 2.0, 3.0], [30.0, 20.0, 16.0])  # error = 100 - accuracy, x = epochs completed
    x, _ = pts["train"]  # from the step windows: step / steps per epoch
    assert x[0] == pytest.approx(0.5) and x[-1] == pytest.approx(3.0)


def test_curves_partial_epoch_and_truncated_line(tmp_path):
    """A run stopped by max_steps logs a partial epoch; a killed run may leave half a line."""
    from convzoo.viz.curves import curve_points, read_run

    run = fake_run(tmp_path / "r", "lenet5", [80, 85], [81, 86], 61_706, 416_520)
    with open(run / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"kind": "epoch", "epoch": 3, "step": 25, "train_top1": 90.0, "test_top1": 88.0,
                             "partial": True}) + "\n")
        fh.write('{"kind": "step", "epo')
    pts = curve_points(read_run(run))
    assert pts["test"][0] == [1.0, 2.0, 2.5]


def test_compare_png(runs, tmp_path):
    res = convzoo("viz", "compare", *map(str, runs), "--out", str(tmp_path / "cmp.png"))
    assert res.returncode == 0, res.stderr
    assert_png(tmp_path / "cmp.png")


def test_compare_groups_seeds(runs, tmp_path):
    from convzoo.viz.compare import points_from_runs

    again = fake_run(tmp_path / "lenet5-s1", "lenet5", [80, 86, 90], [82, 88, 90], 61_706, 416_520)
    pts = {p.label: p for p in points_from_runs([runs[2], again])}
    assert pts["lenet5"].n == 2 and pts["lenet5"].top1 == pytest.approx(89.0)
    assert pts["lenet5"].top1_std == pytest.approx(2 ** 0.5)


def test_filters_of_registered_model(tmp_path):
    res = convzoo("viz", "filters", "lenet5", "--out", str(tmp_path / "f.png"))
    assert res.returncode == 0, res.stderr
    assert_png(tmp_path / "f.png")


def test_filter_grid_normalises_each_filter():
    import torch

    from convzoo.viz.filters import filter_grid

    w = torch.randn(8, 3, 5, 5) * torch.arange(1, 9).view(8, 1, 1, 1)  # very different scales
    grid = filter_grid(w, columns=4, pad=1)
    assert grid.shape == (2 * 6 + 1, 4 * 6 + 1, 3)
    tile = grid[1:6, 1 + 6 * 3 : 6 + 6 * 3]  # filter 3
    assert tile.min() == pytest.approx(0.0) and tile.max() == pytest.approx(1.0)
    grey = filter_grid(torch.randn(6, 1, 5, 5))
    assert grey.ndim == 2


def test_arch_lenet5_blocks_and_image(tmp_path):
    import convzoo
    from convzoo.viz.arch import arch_blocks

    blocks = arch_blocks(convzoo.create_model("lenet5"), (1, 32, 32))
    convs = [b for b in blocks if b.kind == "conv"]
    assert [b.out_shape for b in convs] == [(6, 28, 28), (16, 10, 10)]
    assert [b.params for b in convs] == [156, 2416]
    assert sum(b.params * b.repeat for b in blocks) == 61_706
    res = convzoo_cli_arch("lenet5", tmp_path / "a.svg")
    assert res.returncode == 0, res.stderr
    assert_svg(tmp_path / "a.svg")


def convzoo_cli_arch(model: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return convzoo("viz", "arch", model, "--out", str(out), *extra)


def test_arch_finds_residual_inception_and_dense_structure():
    """Built from the module's structure: an add is a residual unit (identity or projection
    shortcut), one concatenation of branches an inception module, concatenations that include
    the input a dense block."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from convzoo.viz.arch import arch_blocks

    class Res(nn.Module):
        def __init__(self, c_in: int, c: int) -> None:
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(c_in, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
            self.proj = nn.Conv2d(c_in, c, 1) if c_in != c else None

        def forward(self, x):
            s = self.proj(x) if self.proj is not None else x
            return F.relu(self.conv2(F.relu(self.conv1(x))) + s)

    class Inception(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.b1 = nn.Conv2d(c, 4, 1)
            self.b2 = nn.Sequential(nn.Conv2d(c, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 3, padding=1))
            self.b3 = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 2, 1))

        def forward(self, x):
            return torch.cat([self.b1(x), self.b2(x), self.b3(x)], 1)

    class Dense(nn.Module):
        def __init__(self, c: int, n: int = 3, k: int = 2) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Conv2d(c + i * k, k, 3, padding=1) for i in range(n))

        def forward(self, x):
            feats = [x]
            for layer in self.layers:
                feats.append(layer(torch.cat(feats, 1)))
            return torch.cat(feats, 1)

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), Res(8, 8), Res(8, 8),
                        Res(8, 10), Inception(10), Dense(10), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5))
    blocks = arch_blocks(net, (3, 12, 12))
    kinds = [b.kind for b in blocks]
    assert kinds[:4] == ["conv", "residual", "residual", "inception"], kinds
    assert blocks[0].extras == ["BN", "ReLU"]  # folded into the conv's box
    assert blocks[1].repeat == 2 and blocks[1].shortcut == "identity"  # two identical units drawn once
    assert blocks[1].label == "Res: 3x3 8 → 3x3 8"  # the residual path, from the trace
    assert blocks[2].shortcut == "projection: conv 1x1/1, 10" and blocks[2].out_shape == (10, 12, 12)
    assert [b.out_shape[0] for b in blocks[3].branches] == [4, 4, 2]
    dense = blocks[4]
    assert dense.kind == "dense" and dense.dense_layers == 3 and dense.out_shape == (16, 12, 12)
    assert sum(b.params * b.repeat for b in blocks) == sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("name,kind", [("resnet20", "residual"), ("googlenet", "inception"),
                                       ("densenet_bc_100_12", "dense")])
def test_arch_zoo_families(name, kind, tmp_path):
    import convzoo
    from convzoo.viz._common import save_figure
    from convzoo.viz.arch import arch_blocks, plot_arch

    assert name in convzoo.list_models(), f"{name} is not registered"
    import torch

    info = convzoo.model_info(name)
    with torch.device("meta"):  # the diagram needs shapes only
        model = convzoo.create_model(name)
    blocks = arch_blocks(model, info.default_input)
    assert kind in {b.kind for b in blocks}
    assert sum(b.params * b.repeat for b in blocks) == sum(p.numel() for p in model.parameters())
    save_figure(plot_arch(model, info.default_input), tmp_path / "a.png")
    assert_png(tmp_path / "a.png")


def test_receptive_boxes_of_lenet5():
    """conv5 + pool2 sees 6x6 pixels; a second conv5 + pool2 sees 16x16 (jump 4)."""
    import convzoo
    from convzoo.viz.features import receptive_boxes

    m = convzoo.create_model("lenet5")
    assert receptive_boxes(m, "stages.0", (1, 32, 32), [(0, 0), (3, 4)]) == [(0, 0, 6, 6), (6, 8, 12, 14)]
    assert receptive_boxes(m, "stages.1", (1, 32, 32), [(0, 0), (4, 4)]) == [(0, 0, 16, 16), (16, 16, 32, 32)]


def test_top_patches_pick_the_strongest_images():
    import torch
    from torch import nn

    from convzoo.viz.features import top_patches

    conv = nn.Conv2d(1, 2, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 1.0  # channel 0 = the pixel itself
        conv.weight[1, 0, 1, 1] = -1.0
    model = nn.Sequential(conv)
    images = torch.zeros(5, 1, 10, 10)
    images[3, 0, 6, 2] = 9.0
    images[1, 0, 2, 7] = 5.0
    patches = top_patches(model, images, "0", [0], k=2)[0]
    assert [p.image_index for p in patches] == [3, 1]
    assert patches[0].box == (5, 1, 8, 4)  # 3x3 window around pixel (6, 2): output position (5, 1)
    assert patches[0].pixels.shape == (1, 3, 3) and float(patches[0].pixels.max()) == 9.0


# -- trained runs ---------------------------------------------------------------------------
def test_filters_and_features_of_a_trained_run(trained_run, tmp_path, fashion_mnist_dir):
    from PIL import Image

    res = convzoo("viz", "filters", str(trained_run), "--out", str(tmp_path / "f.svg"))
    assert res.returncode == 0, res.stderr
    assert_svg(tmp_path / "f.svg")
    ckpt = trained_run / "checkpoints" / "last.pt"
    res = convzoo("viz", "features", str(ckpt), "test:7", "--samples", "64", "--top", "3", "--channels", "0", "5",
                  "--data-dir", fashion_mnist_dir, "--out", str(tmp_path / "feat.png"))
    assert res.returncode == 0, res.stderr
    assert_png(tmp_path / "feat.png")
    assert_png(tmp_path / "feat.patches.png")
    # an ordinary RGB file works too (converted to the model's grey input)
    img = Image.new("RGB", (40, 30), (200, 30, 30))
    for x in range(10, 30):
        img.putpixel((x, 15), (255, 255, 255))
    img.save(tmp_path / "in.png")
    res = convzoo("viz", "features", str(trained_run), str(tmp_path / "in.png"), "--layers", "stages.0",
                  "--no-patches", "--out", str(tmp_path / "feat2.png"))
    assert res.returncode == 0, res.stderr
    assert_png(tmp_path / "feat2.png")


# -- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize("args,needle", [
    (["filters", "lenet5", "--out", "x.jpg"], ".png or .svg"),
    (["filters", "lenet9", "--out", "x.png"], "lenet5"),
    (["curves", "/nonexistent/run", "--out", "x.png"], "does not exist"),
    (["arch", "lenet5", "--input", "1xAx3", "--out", "x.png"], "CxHxW"),
    (["features", "/nonexistent/last.pt", "test:0", "--out", "x.png"], "checkpoint"),
])  # fmt: skip
def test_user_errors_exit_2_without_traceback(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = convzoo("viz", *args)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert needle in res.stderr


def test_features_unknown_layer(trained_run, tmp_path):
    res = convzoo("viz", "features", str(trained_run), "test:0", "--layers", "stages.9", "--no-patches",
                  "--out", str(tmp_path / "x.png"))
    assert res.returncode == 2 and "no layer 'stages.9'" in res.stderr and "Traceback" not in res.stderr


def test_cli_subprocess_error_path(tmp_path):
    """The installed command, as a user runs it: a user error is one line and exit status 2."""
    res = subprocess.run([sys.executable, "-m", "convzoo", "viz", "arch", "lenet5", "--out", str(tmp_path / "a.gif")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr and ".png or .svg" in res.stderr


def test_viz_help_does_not_import_torch():
    code = ("import sys, convzoo.cli as c; p = c.build_parser(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
