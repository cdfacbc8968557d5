"""Checks every registered model, so a new variant is tested the moment it is registered.

Most checks run on the meta device (shapes and autograd without real tensors): the
published parameter count, the output shape at the default input, the minimum input (it
works, one pixel less raises `InputSizeError`), `feature_info` against the real stage
outputs, torch.fx tracing, and that every parameter gets a gradient in training mode.
Real CPU forward/backward passes, with finite gradients and `forward == forward_head(
forward_features)` in eval mode, run on one representative per family and model class
(the cheapest at its minimum input, 10 classes), to keep the file fast on a 2-core
machine; tests/test_models_classic.py runs more of the classic models for real.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import InputSizeError
from convzoo.models.base import ZooModel
from convzoo.registry import model_info

NAMES = convzoo.list_models()
FAMILIES = sorted({model_info(n).family for n in NAMES})
BATCH = 2  # batch norm in training mode needs more than one value per channel


@functools.lru_cache(maxsize=None)
def meta_model(name: str) -> nn.Module:
    """The model on the meta device, built once (deep nets take seconds even there)."""
    with torch.device("meta"):
        return convzoo.create_model(name)


def meta_input(name: str, side: int | None = None) -> torch.Tensor:
    c, h, w = model_info(name).default_input
    if side is not None:
        h = w = side
    return torch.empty(BATCH, c, h, w, device="meta")


def outputs(y) -> list[torch.Tensor]:
    return list(y) if isinstance(y, tuple) else [y]


def test_registry_is_populated():
    for name in ("lenet5", "lenet5_paper", "alexnet", "alexnet_paper", "vgg16_bn", "vgg_c", "googlenet_paper"):
        assert name in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_model_contract(name):
    """Every check on one meta build: meta kernels are Python, so even shapes of a
    1000-layer net cost about a second per forward pass; the passes are shared."""
    info = model_info(name)
    model = meta_model(name).eval()
    assert isinstance(model, ZooModel)
    assert model.zoo_name == name
    assert model.num_classes == info.num_classes
    assert model.in_channels == info.default_input[0]
    assert len(info.default_input) == 3 and 1 <= info.min_input <= min(info.default_input[1:])

    # published parameter count
    count = sum(p.numel() for p in model.parameters())
    if info.params is not None:
        assert count == info.params, f"{name}: {count:,} parameters, published {info.params:,} ({info.source})"

    # output shape at the default input, and feature_info against the stage outputs:
    # growing the input by L pixels grows a stage of cumulative stride r by L / r pixels.
    feature_info = model.feature_info
    assert feature_info, f"{name} has no feature_info"
    for entry in feature_info:
        assert set(entry) >= {"module", "channels", "reduction"}, entry
    seen: dict[str, list[torch.Size]] = {e["module"]: [] for e in feature_info}
    handles = [
        model.get_submodule(e["module"]).register_forward_hook(
            lambda _m, _i, out, key=e["module"]: seen[key].append(out.shape)
        )
        for e in feature_info
    ]
    step = math.lcm(*(e["reduction"] for e in feature_info))
    side = info.default_input[1]
    try:
        with torch.no_grad():
            y = model.forward_head(model.forward_features(meta_input(name)))
            bigger = model.forward_features(meta_input(name, side + step))
    finally:
        for h in handles:
            h.remove()
    assert tuple(y.shape) == (BATCH, info.num_classes)
    assert bigger.shape[1] == feature_info[-1]["channels"]
    for e in feature_info:
        shapes = seen[e["module"]]
        assert len(shapes) == 2, f"{name}: {e['module']} ran {len(shapes)} times in two forward passes"
        assert all(s[1] == e["channels"] for s in shapes), f"{name}: {e['module']} gives {shapes[0][1]} channels"
        grown = (shapes[1][-1] - shapes[0][-1]) * e["reduction"]
        assert grown == step, f"{name}: {e['module']} maps {shapes[0][-1]} -> {shapes[1][-1]} when the input grows {step} px: reduction is not {e['reduction']}"

    with torch.no_grad():
        # torch.fx (torchvision's create_feature_extractor relies on it)
        graph = torch.fx.symbolic_trace(model)
        assert graph(meta_input(name)).shape == y.shape

    # training mode at the minimum input (the strictest: GoogLeNet's auxiliary heads need
    # more), every parameter gets a gradient; one pixel less raises InputSizeError
    model.train()
    model.zero_grad(set_to_none=True)
    ys = outputs(model(meta_input(name, info.min_input)))
    assert all(tuple(o.shape) == (BATCH, info.num_classes) for o in ys)
    sum(o.sum() for o in ys).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: no gradient for {missing[:5]}"
    if info.min_input > 1:
        with torch.no_grad(), pytest.raises(InputSizeError, match=str(info.min_input)):
            model(meta_input(name, info.min_input - 1))


# -- real passes ----------------------------------------------------------------------------


def representatives(family: str) -> list[str]:
    """The cheapest model of each model class in `family`.

    Cost: parameters (building and gradients) grown with the minimum input, plus a term
    per layer (deep CIFAR nets are slow through Python overhead, not arithmetic).
    """
    best: dict[str, tuple[float, str]] = {}
    for name in NAMES:
        info = model_info(name)
        if info.family != family:
            continue
        model = meta_model(name)
        params = sum(p.numel() for p in model.parameters())
        leaves = sum(1 for m in model.modules() if not any(True for _ in m.children()))
        cost = params * (1 + info.min_input / 64) + 200_000 * leaves
        key = type(model).__qualname__
        if key not in best or cost < best[key][0]:
            best[key] = (cost, name)
    return sorted(name for _, name in best.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_real_forward_backward_on_representatives(family):
    for name in representatives(family):
        info = model_info(name)
        torch.manual_seed(0)
        model = convzoo.create_model(name, num_classes=10).train()
        c = info.default_input[0]
        x = torch.randn(BATCH, c, info.min_input, info.min_input)
        ys = outputs(model(x))
        assert all(tuple(y.shape) == (BATCH, 10) for y in ys), name
        sum(y.pow(2).mean() for y in ys).backward()
        for pname, p in model.named_parameters():
            assert p.grad is not None, f"{name}: no gradient for {pname}"
            assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient for {pname}"
        model.eval()
        with torch.no_grad():
            y = model(x)
            assert isinstance(y, torch.Tensor) and torch.isfinite(y).all(), name
            torch.testing.assert_close(model.forward_head(model.forward_features(x)), y, rtol=0, atol=0)
            assert model.forward_head(model.forward_features(x), pre_logits=True).shape[0] == BATCH
        model.reset_classifier(3)
        assert model.num_classes == 3
        with torch.no_grad():
            assert tuple(model(x).shape) == (BATCH, 3), name
