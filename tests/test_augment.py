"""Batch augmentation: shapes, ranges, and agreement with a per-image reference implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convzoo.data import Augment, make_augment
from convzoo.errors import ConfigError


def batch(n: int = 16, c: int = 1, s: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def reference(aug: Augment, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """The same augmentation one image at a time: F.interpolate, F.pad, slicing, torch.flip."""
    out = []
    for i in range(x.shape[0]):
        img = x[i : i + 1].float()
        if aug.scale_jitter is not None:
            h, w = img.shape[-2:]
            s = int(p["s"][i])
            hi, wi = round(s * h / min(h, w)), round(s * w / min(h, w))
            img = F.interpolate(img, size=(hi, wi), mode="bilinear", align_corners=False)
            c = aug.crop
            oy = int(p["u"][i, 0] * (hi - c + 1))
            ox = int(p["u"][i, 1] * (wi - c + 1))
            img = img[..., oy : oy + c, ox : ox + c]
        else:
            if aug.size is not None and img.shape[-1] != aug.size:
                img = F.interpolate(img, size=(aug.size, aug.size), mode="bilinear", align_corners=False)
            k = aug.pad_crop
            img = F.pad(img, (k, k, k, k))
            c = aug.crop or img.shape[-1] - 2 * k
            oy, ox = int(p["oy"][i]), int(p["ox"][i])
            img = img[..., oy : oy + c, ox : ox + c]
        if "flip" in p and bool(p["flip"][i]):
            img = img.flip(-1)
        out.append(img)
    return aug.normalise(torch.cat(out))


@pytest.mark.parametrize(
    "aug,shape",
    [
        (Augment(pad_crop=4, flip=True), (16, 1, 28, 28)),  # uint8 path, no resize
        (Augment(size=32, pad_crop=4, flip=True, mean=(0.5,), std=(0.25,)), (16, 1, 32, 32)),
        (Augment(size=40, crop=32, flip=True), (16, 1, 32, 32)),
        (Augment(scale_jitter=(32, 64), crop=32, flip=True), (16, 1, 32, 32)),
        (Augment(size=20, pad_crop=2), (16, 1, 20, 20)),  # shrinking
    ],
)
def test_matches_per_image_reference(aug, shape):
    x = batch()
    g = torch.Generator().manual_seed(3)
    params = aug.sample_params(x.shape[0], g, (28, 28))
    out = aug.apply(x, params)
    assert out.shape == shape and out.dtype == torch.float32
    ref = reference(aug, x, params)
    assert torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()


def test_padding_is_zero_and_flip_mirrors():
    x = torch.full((8, 1, 8, 8), 200, dtype=torch.uint8)
    x[:, :, :, 0] = 10  # a marked left column
    aug = Augment(pad_crop=2, flip=True)
    params = {"oy": torch.zeros(8, dtype=torch.long), "ox": torch.zeros(8, dtype=torch.long),
              "flip": torch.tensor([False, True] * 4)}  # fmt: skip
    out = aug.apply(x, params) * 255  # mean 0, std 1: back to pixel values
    assert torch.allclose(out[0, 0, :2], torch.zeros(2, 8))  # two padded rows on top
    assert torch.allclose(out[0, 0, 2:, :2], torch.zeros(6, 2))  # two padded columns on the left
    assert torch.allclose(out[0, 0, 2:, 2], torch.full((6,), 10.0))  # the marked column moved right by 2
    assert torch.allclose(out[1, 0, 2:, 5], torch.full((6,), 10.0))  # mirrored: 7 - 2
    assert torch.allclose(out[1, 0, 2:, 6:], torch.zeros(6, 2))


def test_normalisation_and_range():
    x = torch.full((4, 3, 8, 8), 51, dtype=torch.uint8)
    aug = Augment(mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.1))
    out = aug(x, train=False)
    expected = (torch.tensor([0.2, 0.2, 0.2]) - torch.tensor([0.1, 0.2, 0.3])) / torch.tensor([0.5, 0.25, 0.1])
    assert torch.allclose(out[0, :, 0, 0], expected, atol=1e-6)
    # with mean 0, std 1 the output is the image in [0, 1], whatever the augmentation
    out = Augment(size=48, pad_crop=6, flip=True)(batch(), torch.Generator().manual_seed(0))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 + 1e-6


def test_eval_is_deterministic_centre_crop():
    x = batch(4, 3, 32)
    aug = Augment(size=36, crop=32, flip=True, pad_crop=0, mean=(0.0,) * 3, std=(1.0,) * 3)
    a, b = aug(x, train=False), aug(x, torch.Generator().manual_seed(9), train=False)
    assert torch.equal(a, b) and a.shape == (4, 3, 32, 32)
    big = F.interpolate(x.float(), size=(36, 36), mode="bilinear", align_corners=False) / 255
    assert torch.allclose(a, big[..., 2:34, 2:34], atol=1e-5)
    jit = Augment(scale_jitter=(36, 44), crop=32)
    assert jit.eval_scale() == 40 and jit(x, train=False).shape == (4, 3, 32, 32)


def test_generator_controls_randomness():
    x = batch()
    aug = Augment(size=32, pad_crop=4, flip=True)
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    c = aug(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_channel_conversion():
    grey = batch(2, 1, 8)
    out = Augment(channels=3, mean=(0.5,), std=(0.5,))(grey, train=False)
    assert out.shape == (2, 3, 8, 8) and torch.equal(out[:, 0], out[:, 2])
    rgb = batch(2, 3, 8)
    luma = Augment(channels=1)(rgb, train=False)
    expected = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).float() / 255
    assert torch.allclose(luma[:, 0], expected, atol=1e-5)


def test_make_augment_recipes():
    a = make_augment("cifar10", 32)
    assert (a.size, a.pad_crop, a.flip, len(a.mean)) == (None, 4, True, 3)  # the ResNet CIFAR recipe
    assert make_augment("mnist", 32).flip is False  # digits are not mirror-symmetric
    f = make_augment("fashion-mnist", 227, channels=3)
    assert f.size == 227 and f.channels == 3 and f.mean == (0.2860,) * 3
    assert f(batch(2), torch.Generator().manual_seed(0)).shape == (2, 3, 227, 227)
    j = make_augment("fashion-mnist", 224, "jitter", channels=3)
    assert j.scale_jitter == (256, 512) and j.crop == 224  # VGG: S in [256, 512], 224 crops
    je = make_augment("fashion-mnist", 224, "jitter", train=False)
    assert (je.size, je.crop, je.flip) == (384, 224, False)  # Q = (Smin + Smax) / 2
    n = make_augment("fashion-mnist", 32, "none")
    assert (n.size, n.pad_crop, n.flip) == (32, 0, False)
    assert make_augment("fashion-mnist", 32, flip=False).flip is False  # overrides win
    with pytest.raises(ConfigError, match="unknown augmentation recipe"):
        make_augment("cifar10", 32, "autoaugment")


def test_bad_configs():
    with pytest.raises(ConfigError):
        Augment(scale_jitter=(32, 64))  # no crop
    with pytest.raises(ConfigError):
        Augment(scale_jitter=(32, 64), crop=40)  # crop > Smin
    with pytest.raises(ConfigError):
        Augment(scale_jitter=(40, 64), crop=32, pad_crop=4)
    with pytest.raises(ConfigError):
        Augment(mean=(0.5, 0.5), std=(1.0,))
    with pytest.raises(ConfigError):
        Augment(std=(0.0,))
    with pytest.raises(ConfigError):
        Augment(crop=64)(batch(), torch.Generator())  # crop larger than the image


@settings(max_examples=15, deadline=None)
@given(
    size=st.sampled_from([None, 16, 24, 33]),
    pad=st.integers(0, 5),
    flip=st.booleans(),
    n=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_shapes_and_reference_property(size, pad, flip, n, seed):
    aug = Augment(size=size, pad_crop=pad, flip=flip)
    x = batch(n, 1, 20, seed)
    params = aug.sample_params(n, torch.Generator().manual_seed(seed), (20, 20))
    out = aug.apply(x, params)
    side = size or 20
    assert out.shape == (n, 1, side, side)
    assert torch.allclose(out, reference(aug, x, params), atol=1e-4)
