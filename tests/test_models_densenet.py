"""DenseNet-BC: exact numbers, layers, memory-efficient equivalence, torchvision parity."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
import convzoo.layers.dense as dense
from convzoo.errors import CheckpointError, ConfigError, InputSizeError
from convzoo.layers.dense import DenseBlock, DenseLayer, Transition
from convzoo.registry import model_info

# name: (exact parameters at the default classes, per-stage channels, per-stage reductions)
EXPECTED = {
    "densenet121": (7_978_856, (256, 512, 1024, 1024), (4, 8, 16, 32)),
    "densenet169": (14_149_480, (256, 512, 1280, 1664), (4, 8, 16, 32)),
    "densenet201": (20_013_928, (256, 512, 1792, 1920), (4, 8, 16, 32)),
    "densenet161": (28_681_000, (384, 768, 2112, 2208), (4, 8, 16, 32)),
    "densenet_bc_100_12": (769_162, (216, 300, 342), (1, 2, 4)),
    "densenet_bc_250_24": (15_324_406, (1032, 1500, 1734), (1, 2, 4)),
    "densenet_bc_190_40": (25_624_430, (1320, 1900, 2190), (1, 2, 4)),
}

# Huang et al. 2017 Table 2, millions as printed
PUBLISHED_MILLIONS = {"densenet_bc_100_12": 0.8, "densenet_bc_250_24": 15.3, "densenet_bc_190_40": 25.6}

# torchvision's GFLOPS (= GMACs), printed with 3 decimals
TORCHVISION_GMACS = {"densenet121": 2.834, "densenet169": 3.360, "densenet201": 4.291, "densenet161": 7.728}


def meta_model(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kw)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_registered_densenet_is_in_the_table():
    assert {n for n in convzoo.list_models() if model_info(n).family == "densenet"} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_numbers(name):
    params, channels, reductions = EXPECTED[name]
    info = model_info(name)
    model = meta_model(name)
    assert n_params(model) == params
    if info.params is not None:
        assert info.params == params
    if name in PUBLISHED_MILLIONS:
        assert round(params / 1e6, 1) == PUBLISHED_MILLIONS[name]
    assert [f["channels"] for f in model.feature_info] == list(channels)
    assert [f["reduction"] for f in model.feature_info] == list(reductions)
    c, h, w = info.default_input
    x = torch.empty(2, c, h, w, device="meta")
    model.eval()
    feats = model.stem(x)
    for stage, ch, red in zip(model.stages, channels, reductions):
        feats = stage(feats)
        assert tuple(feats.shape) == (2, ch, h // red, w // red)
    assert tuple(model(x).shape) == (2, info.num_classes)
    # accepted by every DenseNet, with the same parameters
    assert n_params(meta_model(name, memory_efficient=True)) == params


def test_cifar_counts_closed_form():
    # sec. 3-4 by hand: BN (2 per channel) + 1x1 conv to 4k + BN + 3x3 conv to k per layer;
    # BN + 1x1 conv to floor(m/2) per transition; first conv 2k 3x3; final BN; fc
    def count(depth: int, k: int, classes: int = 10) -> int:
        n = (depth - 4) // 6
        c = 2 * k
        total = 3 * c * 9
        for b in range(3):
            if b:
                total += 2 * c + c * (c // 2)
                c //= 2
            for _ in range(n):
                total += 2 * c + c * 4 * k + 2 * 4 * k + 4 * k * k * 9
                c += k
        return total + 2 * c + c * classes + classes

    assert EXPECTED["densenet_bc_100_12"][0] == count(100, 12)
    assert EXPECTED["densenet_bc_250_24"][0] == count(250, 24)
    assert EXPECTED["densenet_bc_190_40"][0] == count(190, 40)


@pytest.mark.parametrize("name", sorted(TORCHVISION_GMACS))
def test_macs_match_torchvision(name):
    total = 0

    def hook(m, _inp, out):
        nonlocal total
        per_out = m.in_features if isinstance(m, nn.Linear) else m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        total += out[0].numel() * per_out

    model = meta_model(name).eval()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    assert round(total / 1e9, 3) == TORCHVISION_GMACS[name] == model_info(name).macs / 1e9


def test_layers_report_out_channels():
    layer = DenseLayer(20, growth=12)
    assert layer.out_channels == 12 and layer.conv1.out_channels == 48  # bottleneck 4k
    block = DenseBlock(3, 20, growth=12)
    assert block.out_channels == 56
    x = torch.randn(2, 20, 6, 6)
    assert block(x).shape == (2, 56, 6, 6)
    assert torch.equal(block(x)[:, :20], x)  # the block's input is part of its output
    t = Transition(56, 28)
    assert t.out_channels == 28 and t(block(x)).shape == (2, 28, 3, 3)
    assert [n for n, _ in layer.named_children()] == ["norm1", "act1", "conv1", "norm2", "act2", "conv2"]


def test_memory_efficient_is_identical(monkeypatch):
    calls = []
    real = dense.checkpoint

    def counting(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real(*args, **kwargs)

    monkeypatch.setattr(dense, "checkpoint", counting)
    torch.manual_seed(0)
    normal = convzoo.create_model("densenet_bc_100_12")
    efficient = convzoo.create_model("densenet_bc_100_12", memory_efficient=True)
    efficient.load_state_dict(normal.state_dict())
    x = torch.randn(3, 3, 8, 8)
    outs = []
    for model in (normal, efficient):
        out = model(x)
        out.square().sum().backward()
        outs.append(out)
    assert len(calls) == 48 and set(calls) == {False}  # every dense layer, non-reentrant
    assert torch.equal(outs[0], outs[1])
    grads = dict(normal.named_parameters())
    for name, p in efficient.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, grads[name].grad), name
    # BN running statistics are updated once, not again when recomputed
    reference = normal.state_dict()
    for name, buf in efficient.state_dict().items():
        assert torch.equal(buf, reference[name]), name
    # no checkpointing where nothing is recorded for backward
    calls.clear()
    with torch.no_grad():
        efficient.eval()(x)
    assert not calls


def test_forward_backward_and_head():
    torch.manual_seed(0)
    model = convzoo.create_model("densenet_bc_100_12", num_classes=5, in_channels=1)
    x = torch.randn(2, 1, 8, 8)
    out = model(x)
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.forward_head(model.forward_features(x)), model(x))
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 342)
        model.reset_classifier(3)
        assert model(x).shape == (2, 3)


def test_min_input_by_meta_forward():
    for name in ("densenet121", "densenet_bc_100_12"):
        side = model_info(name).min_input
        model = meta_model(name).eval()
        model(torch.empty(1, 3, side, side, device="meta"))
        with pytest.raises(InputSizeError, match=f"{side}x{side}"):
            model(torch.empty(1, 3, side - 1, side - 1, device="meta"))


def test_bad_options():
    with pytest.raises(ConfigError, match="memory_efficient"):
        meta_model("densenet121", memory_efficent=True)
    with pytest.raises(ConfigError, match="memory_efficient"):
        meta_model("densenet121", memory_efficient="yes")


def test_torchvision_parity_and_legacy_keys():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = torchvision.models.densenet121(weights=None).eval()
    model = convzoo.create_model("densenet121").eval()
    sd = reference.state_dict()
    convzoo.load_torchvision_weights(model, sd)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= 1e-5
    # checkpoints of torchvision < 0.3 spelled "norm1" as "norm.1"
    legacy = {k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v for k, v in sd.items()}
    assert legacy.keys() != sd.keys()
    assert model.convert_torchvision_state_dict(legacy).keys() == model.convert_torchvision_state_dict(sd).keys()


def test_wrong_architecture_checkpoint():
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        sd = torchvision.models.densenet121(weights=None).state_dict()
        resnet_sd = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(CheckpointError, match="densenet169"):
        convzoo.load_torchvision_weights(meta_model("densenet169"), sd)
    with pytest.raises(CheckpointError, match="missing"):
        convzoo.load_torchvision_weights(meta_model("densenet121"), resnet_sd)
    with pytest.raises(CheckpointError, match="CIFAR"):
        convzoo.load_torchvision_weights(meta_model("densenet_bc_100_12"), sd)
