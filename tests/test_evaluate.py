"""Evaluation: top-k, confusion matrix, 10-crop and multi-scale views, dense evaluation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from convzoo import create_model
from convzoo.data import ArrayDataset, Augment
from convzoo.errors import ConfigError
from convzoo.evaluate import confusion_matrix, densify, evaluate, topk_correct


def test_topk_and_confusion_by_hand():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    labels = torch.tensor([1, 2, 2, 1])
    assert topk_correct(logits, labels, (1, 2, 5)) == {1: 2, 2: 3, 5: 4}
    cm = confusion_matrix(logits.argmax(1), labels, 3)
    assert cm.tolist() == [[0, 0, 0], [1, 1, 0], [1, 0, 1]]  # row = true, column = predicted
    with pytest.raises(ConfigError):
        confusion_matrix(torch.tensor([3]), torch.tensor([0]), 3)


class Tiny(nn.Module):
    """conv trunk -> adaptive pool -> flatten -> Dropout/Linear/ReLU chain (torchvision's VGG layout)."""

    def __init__(self, pool: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = nn.Sequential(
            nn.Dropout(), nn.Linear(8 * pool * pool, 32), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(32, 5)
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@pytest.mark.parametrize("train_size,bridge", [(8, "Identity"), (16, "AvgPool2d"), (4, "Upsample")])
def test_densify_equals_fc_at_training_size(train_size, bridge):
    torch.manual_seed(0)
    model = Tiny().eval()
    dense = densify(model, train_size).eval()
    assert type(dense.bridge).__name__ == bridge
    x = torch.randn(3, 3, train_size, train_size)
    assert (dense(x) - model(x)).abs().max() < 1e-5
    # a larger input gives a larger score map, averaged into one score per class
    big = torch.randn(2, 3, 2 * train_size + 8, 2 * train_size + 8)
    smap = dense.score_map(big)
    assert smap.shape[:2] == (2, 5) and smap.shape[-1] > 1
    assert torch.allclose(dense(big), smap.mean(dim=(2, 3)))


def test_densify_needs_an_integer_pool_ratio():
    with pytest.raises(ConfigError, match="integer ratio"):
        densify(Tiny(pool=4).eval(), 12)  # 6x6 -> 4x4


def test_densify_lenet5():
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    dense = densify(model)  # the registry's 32x32 input
    x = torch.randn(4, 1, 32, 32)
    assert (dense(x) - model(x)).abs().max() < 1e-5
    assert dense.score_map(torch.randn(1, 1, 48, 48)).shape == (1, 10, 5, 5)
    # the dense map at a larger size equals the FC net slid over the image with stride 4
    big = torch.randn(1, 1, 36, 36)
    smap = dense.score_map(big)
    assert torch.allclose(smap[0, :, 1, 0], model(big[..., 4:36, 0:32])[0], atol=1e-5)


def test_densify_vgg_bypasses_its_adaptive_pool():
    # the real VGG-A trunk and head layout, with narrow FC layers so the test stays small
    with torch.device("meta"):
        model = create_model("vgg11", num_classes=10)
        model.pre_logits.fc1 = nn.Linear(512 * 7 * 7, 64)
        model.pre_logits.fc2 = nn.Linear(64, 64)
        model.fc = nn.Linear(64, 10)
    model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
    model.eval().double()  # float64: the comparison shows equivalence, not rounding of 25088-term sums
    dense = densify(model, 32)  # 1x1 maps repeated to 7x7 by the adaptive pool
    assert type(dense.bridge).__name__ == "Upsample"
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    assert (dense(x) - model(x)).abs().max() < 1e-5
    assert dense.score_map(torch.randn(1, 3, 64, 64, dtype=torch.float64)).shape == (1, 10, 8, 8)


def test_densify_rejects_other_heads():
    class BNHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc1 = nn.Linear(4 * 6 * 6, 8)
            self.bn = nn.BatchNorm1d(8)
            self.fc2 = nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(self.bn(self.fc1(self.conv(x).flatten(1))))

    class FunctionalRelu(BNHead):
        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(self.conv(x).flatten(1))))

    with pytest.raises(ConfigError, match="BatchNorm1d"):
        densify(BNHead().eval(), 8)
    with pytest.raises(ConfigError, match="plain chain"):
        densify(FunctionalRelu().eval(), 8)
    with pytest.raises(ConfigError, match="input size"):
        densify(BNHead())


class ReadsClass(nn.Module):
    """A 'perfect' classifier for images whose brightness encodes the class."""

    in_channels = 1

    def forward(self, x):
        return self._scores(x)

    def _scores(self, x):
        level = x.mean(dim=(1, 2, 3))  # brightness in [0, 1] (the graded set has no statistics)
        targets = torch.tensor([0.1, 0.5, 0.9], device=x.device)  # brightness of each class
        return -((level[:, None] - targets[None, :]) ** 2) * 1000


def graded(n_per_class: int = 4, size: int = 12) -> ArrayDataset:
    levels = [int(0.1 * 255), int(0.5 * 255), int(0.9 * 255)]
    images = torch.cat([torch.full((n_per_class, 1, size, size), v, dtype=torch.uint8) for v in levels])
    labels = torch.arange(3).repeat_interleave(n_per_class)
    return ArrayDataset(images, labels, ["dark", "mid", "bright"], "graded")


def test_evaluate_perfect_and_constant_models():
    data = graded()
    res = evaluate(ReadsClass(), data, batch_size=5, confusion=True)
    assert res["top1"] == 100.0 and res["top1_error"] == 0.0 and res["count"] == 12
    assert res["confusion"] == [[4, 0, 0], [0, 4, 0], [0, 0, 4]]
    assert res["top5"] == 100.0  # k above the number of classes counts every row

    class Constant(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 3)

    res = evaluate(Constant(), data, batch_size=5)
    assert math.isclose(res["loss"], math.log(3), rel_tol=1e-6)  # uniform posteriors
    assert math.isclose(res["top1"], 100 / 3, rel_tol=1e-6)  # ties go to class 0


def test_views_crops_scales_and_flip():
    data = graded(2, 12)
    seen = []

    class Spy(ReadsClass):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return self._scores(x)

    res = evaluate(Spy(), data, input_size=8, crops=10, scales=[10, 12])
    assert res["views"] == 20 and res["scales"] == [10, 12] and res["top1"] == 100.0
    assert set(seen) == {(6, 1, 8, 8)}
    seen.clear()
    res = evaluate(Spy(), data, input_size=8, flip=True)
    assert res["views"] == 2 and seen == [(6, 1, 8, 8)] * 2
    seen.clear()
    res = evaluate(Spy(), data, input_size=8, crops=10)
    assert res["scales"] == [9]  # Q = input * 8/7 (256 for 224)
    with pytest.raises(ConfigError, match="crops must be 1 or 10"):
        evaluate(Spy(), data, crops=3)


def test_single_crop_matches_the_eval_augmentation():
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    g = torch.Generator().manual_seed(1)
    data = ArrayDataset(torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8, generator=g),
                        torch.randint(0, 10, (20,), generator=g), [str(i) for i in range(10)], "x")  # fmt: skip
    aug = Augment(size=36, crop=32, mean=(0.3,), std=(0.4,))
    res = evaluate(model, data, augment=aug, batch_size=8)
    with torch.no_grad():
        logits = model(aug(data.images, train=False))
    expected = torch.nn.functional.cross_entropy(logits, data.labels).item()
    assert math.isclose(res["loss"], expected, rel_tol=1e-5) and res["scales"] == [36]
    assert res["top1"] == 100.0 * int((logits.argmax(1) == data.labels).sum()) / 20
    # the same data through a DataLoader of normalised float batches
    loader = DataLoader(TensorDataset(aug(data.images, train=False), data.labels), batch_size=7)
    res2 = evaluate(model, loader, input_size=32)
    assert math.isclose(res2["loss"], expected, rel_tol=1e-5) and res2["count"] == 20


def test_dense_evaluation_runs_at_several_scales():
    torch.manual_seed(0)
    model = create_model("lenet5").eval()
    data = graded(2, 28)
    res = evaluate(model, data, dense=True, flip=True, scales=[32, 40])
    assert res["views"] == 4 and res["dense"] and res["count"] == 6
    # at the training scale the dense view is the single-crop view
    a = evaluate(model, data, dense=True, scales=[32])
    b = evaluate(model, data, scales=[32])
    assert math.isclose(a["loss"], b["loss"], rel_tol=1e-5)
    model.train()  # evaluate switches to eval mode and back
    c = evaluate(model, data, scales=[32], amp=True)  # bf16 autocast: close, not equal
    assert c["count"] == 6 and math.isclose(c["loss"], b["loss"], rel_tol=5e-2)
    assert model.training is True


def test_evaluate_image_folder(tmp_path):
    import warnings

    from convzoo.data import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision 0.29 deprecates its codecs
        from torchvision.io import encode_png

        for cls, n in (("a", 3), ("b", 2)):
            (tmp_path / cls).mkdir()
            for i in range(n):
                img = torch.full((3, 10 + i, 12), 40 * i, dtype=torch.uint8)
                (tmp_path / cls / f"{i}.png").write_bytes(encode_png(img).numpy().tobytes())
    seen = []

    class Constant(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return torch.tensor([[1.0, 0.0]]).expand(x.shape[0], 2)

    data = load_dataset(f"folder:{tmp_path}")
    res = evaluate(Constant(), data, input_size=8, workers=0, crops=10, confusion=True)
    assert res["count"] == 5 and res["top1"] == 60.0 and res["scales"] == [9]
    assert res["confusion"] == [[3, 0], [2, 0]] and set(seen) == {(5, 3, 8, 8)}
