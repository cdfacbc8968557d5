"""The classic families (LeNet, AlexNet, VGG, GoogLeNet) against their papers and torchvision.

Expected numbers come from the papers, the lecture's tables and torchvision's metadata
(../shared/REFERENCES.md); structural facts are checked against the papers' tables written
out independently here. Big models are built on the meta device; real passes stay small.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import convzoo
from convzoo.errors import CheckpointError, InputSizeError
from convzoo.interop import check_state_dict
from convzoo.layers import LRN, InceptionBlock
from convzoo.registry import model_info

VGG_STAGES = [(64, 2, 112), (128, 4, 56), (256, 8, 28), (512, 16, 14), (512, 32, 7)]
GOOGLENET_STAGES = [(64, 2, 112), (192, 4, 56), (480, 8, 28), (832, 16, 14), (1024, 32, 7)]

#: name: (kwargs, exact parameters, classes, [(channels, reduction, side at the default input)])
EXPECTED: dict[str, tuple[dict, int, int, list[tuple[int, int, int]]]] = {
    "lenet5": ({}, 61_706, 10, [(6, 2, 14), (16, 4, 5)]),
    "lenet5_paper": ({}, 60_000 + 850, 10, [(6, 2, 14), (16, 4, 5)]),
    "alexnet_paper": ({}, 60_965_224, 1000, [(96, 8, 27), (256, 16, 13), (256, 32, 6)]),
    "alexnet": ({}, 61_100_840, 1000, [(64, 8, 27), (192, 16, 13), (256, 32, 6)]),
    "vgg_a": ({}, 132_863_336, 1000, VGG_STAGES),
    "vgg_a_lrn": ({}, 132_863_336, 1000, VGG_STAGES),
    "vgg_b": ({}, 133_047_848, 1000, VGG_STAGES),
    "vgg_c": ({}, 133_638_952, 1000, VGG_STAGES),
    "vgg_d": ({}, 138_357_544, 1000, VGG_STAGES),
    "vgg_e": ({}, 143_667_240, 1000, VGG_STAGES),
    "vgg11": ({}, 132_863_336, 1000, VGG_STAGES),
    "vgg13": ({}, 133_047_848, 1000, VGG_STAGES),
    "vgg16": ({}, 138_357_544, 1000, VGG_STAGES),
    "vgg19": ({}, 143_667_240, 1000, VGG_STAGES),
    "vgg11_bn": ({}, 132_868_840, 1000, VGG_STAGES),
    "vgg13_bn": ({}, 133_053_736, 1000, VGG_STAGES),
    "vgg16_bn": ({}, 138_365_992, 1000, VGG_STAGES),
    "vgg19_bn": ({}, 143_678_248, 1000, VGG_STAGES),
    "googlenet": ({}, 6_624_904, 1000, GOOGLENET_STAGES),
    "googlenet_paper": ({"aux_logits": False}, 6_998_552, 1000, GOOGLENET_STAGES),
}


def meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kwargs)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_linear_macs(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Multiply-adds of each Conv2d / Linear (torchvision's convention), by qualified name."""
    macs: dict[str, int] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            handles.append(m.register_forward_hook(lambda _m, _i, o, n=name, k=k: macs.__setitem__(n, o[0].numel() * k)))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(lambda m, _i, _o, n=name: macs.__setitem__(n, m.in_features * m.out_features)))
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return macs


# -- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_numbers(name):
    kwargs, params, classes, stages = EXPECTED[name]
    info = model_info(name)
    model = meta(name, **kwargs).eval()
    assert n_params(model) == params
    if info.params is not None and not kwargs:
        assert info.params == params
    assert [(e["channels"], e["reduction"]) for e in model.feature_info] == [(c, r) for c, r, _ in stages]
    sides: dict[str, int] = {}
    handles = [
        model.get_submodule(e["module"]).register_forward_hook(
            lambda _m, _i, out, key=e["module"]: sides.__setitem__(key, out.shape[-1])
        )
        for e in model.feature_info
    ]
    x = torch.empty(1, *info.default_input, device="meta")
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    assert tuple(y.shape) == (1, classes)
    assert [sides[e["module"]] for e in model.feature_info] == [s for _, _, s in stages]


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "googlenet"])
def test_published_macs(name):
    # torchvision's "GFLOPS" are multiply-adds of conv and linear layers, given to 3 decimals
    info = model_info(name)
    total = sum(conv_linear_macs(meta(name).eval(), torch.empty(1, *info.default_input, device="meta")).values())
    tolerance = 0 if name == "lenet5" else 0.0005e9
    assert abs(total - info.macs) <= tolerance, f"{name}: {total:,} MACs, published {info.macs:,}"


# -- LeNet-5 (1998) ---------------------------------------------------------------------------


def test_lenet5_paper_layer_params():
    m = convzoo.create_model("lenet5_paper")
    layers = {
        "stages.0.c1": 156, "stages.0.s2": 12, "stages.1.c3": 1_516, "stages.1.s4": 32,
        "pre_logits.c5": 48_120, "pre_logits.f6": 10_164, "fc": 850,
    }
    assert {k: n_params(m.get_submodule(k)) for k in layers} == layers


def test_lenet5_paper_c3_table_is_the_papers():
    from convzoo.models.lenet import C3_TABLE

    seen = [{i for i in range(6) if C3_TABLE[i][o] == "X"} for o in range(16)]
    for o in range(6):  # three contiguous maps, cyclically
        assert seen[o] == {o, (o + 1) % 6, (o + 2) % 6}
    for o in range(6, 12):  # four contiguous
        assert seen[o] == {(o - 6 + d) % 6 for d in range(4)}
    for o in range(12, 15):  # four non-contiguous (discontinuous subsets)
        assert len(seen[o]) == 4 and seen[o] not in [{(s + d) % 6 for d in range(4)} for s in range(6)]
    assert seen[12:15] == [{0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}]
    assert seen[15] == set(range(6))


def test_lenet5_paper_c3_equals_masked_convolution():
    torch.manual_seed(0)
    m = convzoo.create_model("lenet5_paper")
    c3 = m.get_submodule("stages.1.c3")
    from convzoo.models.lenet import C3_TABLE

    # the same layer, written as a full 16x6 convolution with unconnected kernels zeroed
    full = torch.zeros(16, 6, 5, 5)
    packed = iter(c3.weight.detach())
    for o in range(16):
        for i in range(6):
            if C3_TABLE[i][o] == "X":
                full[o, i] = next(packed).view(5, 5)
    x = torch.randn(2, 6, 14, 14)
    torch.testing.assert_close(c3(x), F.conv2d(x, full, c3.bias.detach()))
    # an input map that a C3 map is not connected to does not reach it
    x2 = x.clone()
    x2[:, 3] += 10.0
    changed = (c3(x2) - c3(x)).abs().amax(dim=(0, 2, 3)) > 0
    assert changed.tolist() == [C3_TABLE[3][o] == "X" for o in range(16)]


def test_lenet5_paper_subsampling_and_squashing_by_hand():
    m = convzoo.create_model("lenet5_paper")
    s2 = m.get_submodule("stages.0.s2")
    with torch.no_grad():
        s2.weight.copy_(torch.arange(1.0, 7.0))
        s2.bias.copy_(torch.full((6,), 0.5))
    x = torch.randn(1, 6, 4, 4)
    out = s2(x)
    for c in range(6):
        for i in range(2):
            for j in range(2):
                window = x[0, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].sum()
                assert torch.isclose(out[0, c, i, j], window * (c + 1) + 0.5, atol=1e-5)
    act = m.get_submodule("stages.0.act1")
    a = torch.tensor([-1.0, 0.0, 1.0, 100.0])
    torch.testing.assert_close(act(a), 1.7159 * torch.tanh(2 * a / 3))
    # the paper's choice: f(+-1) = +-1 and the asymptote 1.7159
    assert abs(float(act(torch.tensor(1.0))) - 1.0) < 1e-3


def test_lenet5_paper_initialisation_within_2_4_over_fan_in():
    m = convzoo.create_model("lenet5_paper")
    c5 = m.get_submodule("pre_logits.c5")
    assert c5.weight.abs().max() <= 2.4 / (16 * 25)
    c3 = m.get_submodule("stages.1.c3")
    assert c3.weight[:18].abs().max() <= 2.4 / 75  # maps 0-5: fan-in 3 x 25
    assert c3.weight[-6:].abs().max() <= 2.4 / 150  # map 15: fan-in 6 x 25


# -- AlexNet ----------------------------------------------------------------------------------


def test_alexnet_paper_structure():
    m = meta("alexnet_paper")
    convs = {n.split(".")[-2]: c for n, c in m.named_modules() if isinstance(c, nn.Conv2d)}
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.groups) for c in convs.values()] == [
        (96, 11, 4, 1), (256, 5, 1, 2), (384, 3, 1, 1), (384, 3, 1, 2), (256, 3, 1, 2),
    ]
    # conv2, conv4, conv5 see only the maps of their own GPU: 48, 192, 192 input channels per kernel
    assert [c.weight.shape[1] for c in convs.values()] == [3, 48, 256, 192, 192]
    # LRN after the ReLU of conv1 and conv2, then overlapping 3x3/2 pooling
    kinds = [type(x).__name__ for x in m.stages.modules() if not list(x.children())]
    assert kinds == [
        "Conv2d", "ReLU", "LRN", "MaxPool2d", "Conv2d", "ReLU", "LRN", "MaxPool2d",
        "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d",
    ]
    lrn = m.get_submodule("stages.0.lrn")
    assert isinstance(lrn, LRN) and (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)
    assert all((p.kernel_size, p.stride) == (3, 2) for p in m.modules() if isinstance(p, nn.MaxPool2d))
    head = [type(x).__name__ for x in m.pre_logits]
    assert head == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout"]
    assert all(d.p == 0.5 for d in m.modules() if isinstance(d, nn.Dropout))
    # Figure 2's maps: 55x55, 27x27, 13x13 (three times), 6x6 into the first FC layer
    sizes = conv_output_sides(m, 227)
    assert sizes == [55, 27, 13, 13, 13]


def conv_output_sides(model: nn.Module, side: int) -> list[int]:
    sides: list[int] = []
    handles = [
        c.register_forward_hook(lambda _m, _i, o: sides.append(o.shape[-1]))
        for c in model.modules()
        if isinstance(c, nn.Conv2d)
    ]
    with torch.no_grad():
        model.forward_features(torch.empty(1, 3, side, side, device="meta"))
    for h in handles:
        h.remove()
    return sides


def test_alexnet_paper_is_fixed_size_and_initialised_as_the_paper():
    m = meta("alexnet_paper")
    with pytest.raises(InputSizeError):
        m(torch.empty(1, 3, 259, 259, device="meta"))  # 7x7 maps into a 6x6x256 FC layer
    torch.manual_seed(0)
    real = convzoo.create_model("alexnet_paper", num_classes=10)
    biases = {n: float(p.detach().mean()) for n, p in real.named_parameters() if n.endswith("bias")}
    assert biases == {
        "stages.0.conv1.conv.bias": 0.0, "stages.1.conv2.conv.bias": 1.0, "stages.2.conv3.conv.bias": 0.0,
        "stages.2.conv4.conv.bias": 1.0, "stages.2.conv5.conv.bias": 1.0, "pre_logits.fc1.bias": 1.0,
        "pre_logits.fc2.bias": 1.0, "fc.bias": 0.0,
    }
    assert abs(float(real.get_submodule("stages.0.conv1.conv").weight.detach().std()) - 0.01) < 1e-3


# -- VGG --------------------------------------------------------------------------------------

#: Table 1 of the paper (the lecture's "VGG Net (Variations)"), column by column
TABLE1 = {
    "A": "conv3-64 | conv3-128 | conv3-256 conv3-256 | conv3-512 conv3-512 | conv3-512 conv3-512",
    "A-LRN": "conv3-64 LRN | conv3-128 | conv3-256 conv3-256 | conv3-512 conv3-512 | conv3-512 conv3-512",
    "B": "conv3-64 conv3-64 | conv3-128 conv3-128 | conv3-256 conv3-256 | conv3-512 conv3-512 | conv3-512 conv3-512",
    "C": "conv3-64 conv3-64 | conv3-128 conv3-128 | conv3-256 conv3-256 conv1-256 | conv3-512 conv3-512 conv1-512"
    " | conv3-512 conv3-512 conv1-512",
    "D": "conv3-64 conv3-64 | conv3-128 conv3-128 | conv3-256 conv3-256 conv3-256 | conv3-512 conv3-512 conv3-512"
    " | conv3-512 conv3-512 conv3-512",
    "E": "conv3-64 conv3-64 | conv3-128 conv3-128 | conv3-256 conv3-256 conv3-256 conv3-256"
    " | conv3-512 conv3-512 conv3-512 conv3-512 | conv3-512 conv3-512 conv3-512 conv3-512",
}
VGG_COLUMNS = {
    "vgg_a": "A", "vgg_a_lrn": "A-LRN", "vgg_b": "B", "vgg_c": "C", "vgg_d": "D", "vgg_e": "E",
    "vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E",
    "vgg11_bn": "A", "vgg13_bn": "B", "vgg16_bn": "D", "vgg19_bn": "E",
}


def vgg_tokens(model: nn.Module) -> str:
    stages = []
    for stage in model.stages:
        tokens = []
        for layer in stage.modules():
            if isinstance(layer, nn.Conv2d):
                tokens.append(f"conv{layer.kernel_size[0]}-{layer.out_channels}")
            elif isinstance(layer, LRN):
                tokens.append("LRN")
        assert isinstance(list(stage.children())[-1], nn.MaxPool2d)  # every stage ends with maxpool
        stages.append(" ".join(tokens))
    return " | ".join(stages)


@pytest.mark.parametrize("name", sorted(VGG_COLUMNS))
def test_vgg_matches_table1(name):
    m = meta(name)
    assert vgg_tokens(m) == TABLE1[VGG_COLUMNS[name]]
    norms = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert len(norms) == (TABLE1[VGG_COLUMNS[name]].count("conv") if name.endswith("_bn") else 0)
    assert all(c.bias is not None for c in m.modules() if isinstance(c, nn.Conv2d))  # torchvision keeps them
    fcs = [x for x in m.modules() if isinstance(x, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in fcs] == [(25088, 4096), (4096, 4096), (4096, 1000)]
    assert [d.p for d in m.modules() if isinstance(d, nn.Dropout)] == [0.5, 0.5]
    if name == "vgg_a_lrn":
        lrn = m.get_submodule("stages.0.lrn")
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)
        order = [n for n, _ in m.get_submodule("stages.0").named_children()]
        assert order == ["conv1", "lrn", "pool"]  # after the first conv's ReLU


def test_vgg_aliases_are_the_same_network():
    for alias, letter in (("vgg11", "vgg_a"), ("vgg13", "vgg_b"), ("vgg16", "vgg_d"), ("vgg19", "vgg_e")):
        a, b = meta(alias).state_dict(), meta(letter).state_dict()
        assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}


def test_vgg_adaptive_pool_is_identity_at_224_and_small_inputs_work():
    torch.manual_seed(0)
    m = convzoo.create_model("vgg_a_lrn", num_classes=5).eval()
    x = torch.randn(1, 512, 7, 7)
    assert torch.equal(m.pool(x), x)
    with torch.no_grad():
        assert m(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    with pytest.raises(InputSizeError, match="32x32"):
        m(torch.randn(1, 3, 31, 31))


# -- GoogLeNet --------------------------------------------------------------------------------

#: the lecture's table: module -> (output side, depth, ops in millions)
GOOGLENET_ROWS = {
    "inception3a": (28, 256, 128), "inception3b": (28, 480, 304),
    "inception4a": (14, 512, 73), "inception4b": (14, 512, 88), "inception4c": (14, 512, 100),
    "inception4d": (14, 528, 119), "inception4e": (14, 832, 170),
    "inception5a": (7, 832, 54), "inception5b": (7, 1024, 71),
}


def inception_params(cin: int, n1: int, b3: tuple[int, int], b5: tuple[int, int], proj: int, k5: int, bn: bool) -> int:
    """Closed form: weights (+ biases, or + BN scale and shift) of the four branches."""
    convs = [(cin, n1, 1), (cin, b3[0], 1), (b3[0], b3[1], 3), (cin, b5[0], 1), (b5[0], b5[1], k5), (cin, proj, 1)]
    return sum(i * o * k * k + (2 * o if bn else o) for i, o, k in convs)


@pytest.mark.parametrize("name, k5, bn", [("googlenet_paper", 5, False), ("googlenet", 3, True)])
def test_googlenet_params_closed_form(name, k5, bn):
    from convzoo.models.googlenet import INCEPTION

    extra = 2 if bn else 1  # a bias, or BN's scale and shift, per output channel
    total = 7 * 7 * 3 * 64 + extra * 64 + 64 * 64 + extra * 64 + 3 * 3 * 64 * 192 + extra * 192
    cin = 192
    for n1, b3, b5, proj in INCEPTION.values():
        total += inception_params(cin, n1, b3, b5, proj, k5, bn)
        cin = n1 + b3[1] + b5[1] + proj
    total += 1024 * 1000 + 1000
    assert n_params(meta(name, aux_logits=False)) == total
    # each auxiliary head: 1x1 conv to 128, FC 2048 -> 1024, FC 1024 -> classes
    aux = lambda c: c * 128 + extra * 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000  # noqa: E731
    assert n_params(meta(name, aux_logits=True)) == total + aux(512) + aux(528)


def test_googlenet_paper_follows_the_lecture_table():
    m = meta("googlenet_paper").eval()
    macs = conv_linear_macs(m, torch.empty(1, 3, 224, 224, device="meta"))
    shapes: dict[str, tuple[int, int]] = {}
    for stage in m.stages:
        for name, block in stage.named_children():
            if name in GOOGLENET_ROWS:
                block.register_forward_hook(lambda _m, _i, o, n=name: shapes.__setitem__(n, (o.shape[-1], o.shape[1])))
    with torch.no_grad():
        m(torch.empty(1, 3, 224, 224, device="meta"))
    for name, (side, depth, ops) in GOOGLENET_ROWS.items():
        assert shapes[name] == (side, depth), name
        row = sum(v for k, v in macs.items() if f".{name}." in k) / 1e6
        if name != "inception5a":  # the paper's 54M; the table's own widths give 51.1M (docs/models.md)
            assert abs(row - ops) < 1.0, f"{name}: {row:.1f}M MACs, the table says {ops}M"
    # the "convolution 3x3/1, depth 2" row: 1x1 reduce + 3x3, 360M
    assert abs((macs["stages.0.conv2.conv"] + macs["stages.0.conv3.conv"]) / 1e6 - 360) < 1.0
    assert macs["fc"] == 1_024_000


def test_googlenet_paper_layers():
    m = meta("googlenet_paper")
    assert [n for n, _ in m.get_submodule("stages.0").named_children()] == ["pool", "lrn1", "conv2", "conv3", "lrn2"]
    block = m.get_submodule("stages.1.inception3a")
    assert isinstance(block, InceptionBlock)
    assert block.branch3.conv.conv.kernel_size == (5, 5) and block.branch2.conv.conv.kernel_size == (3, 3)
    assert not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    trunk = list(m.stem.modules()) + list(m.stages.modules())
    assert sum(isinstance(x, nn.ReLU) for x in trunk) == sum(isinstance(x, nn.Conv2d) for x in trunk) == 57
    assert m.drop.p == 0.4 and m.aux1.drop.p == 0.7
    tv_like = meta("googlenet")
    assert tv_like.get_submodule("stages.1.inception3a.branch3.conv.conv").kernel_size == (3, 3)
    assert tv_like.get_submodule("stages.3.pool").kernel_size == 2 and m.get_submodule("stages.3.pool").kernel_size == 3
    assert tv_like.aux1 is None and tv_like.drop.p == 0.2


def test_googlenet_aux_heads_in_training_only():
    torch.manual_seed(0)
    m = convzoo.create_model("googlenet_paper", num_classes=7)
    # at 224 the 5x5/3 average pool makes the paper's 4x4 maps
    pooled = []
    m.aux1.pool[0].register_forward_hook(lambda _m, _i, o: pooled.append(tuple(o.shape[-2:])))
    meta_m = meta("googlenet_paper").train()
    meta_m.aux1.pool[0].register_forward_hook(lambda _m, _i, o: pooled.append(tuple(o.shape[-2:])))
    meta_m(torch.empty(2, 3, 224, 224, device="meta"))
    assert pooled == [(4, 4)]
    m.train()
    x = torch.randn(2, 3, 80, 80)  # 79 is the smallest input the auxiliary heads take
    out = m(x)
    assert isinstance(out, tuple) and out._fields == ("logits", "aux1", "aux2")
    logits, aux1, aux2 = out
    assert logits.shape == aux1.shape == aux2.shape == (2, 7)
    # the trainer's loss: main + 0.3 * each auxiliary loss; the aux heads get gradients
    target = torch.tensor([1, 2])
    loss = F.cross_entropy(logits, target) + 0.3 * (F.cross_entropy(aux1, target) + F.cross_entropy(aux2, target))
    loss.backward()
    assert m.aux1.fc2.weight.grad is not None and m.aux2.conv.conv.weight.grad is not None
    m.eval()
    with torch.no_grad():
        y = m(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 7)
    off = convzoo.create_model("googlenet_paper", num_classes=7, aux_logits=False).train()
    assert isinstance(off(x), torch.Tensor)
    m.reset_classifier(4)
    assert m.aux1.fc2.out_features == 4 and m.fc.out_features == 4


def test_googlenet_feature_extractor():
    from torchvision.models.feature_extraction import create_feature_extractor

    m = meta("googlenet").eval()
    extractor = create_feature_extractor(m, {e["module"]: str(i) for i, e in enumerate(m.feature_info)})
    with torch.no_grad():
        feats = extractor(torch.empty(1, 3, 224, 224, device="meta"))
    assert [tuple(f.shape[1:]) for f in feats.values()] == [(c, s, s) for c, _, s in GOOGLENET_STAGES]


# -- torchvision interoperability -------------------------------------------------------------

TV_COUNTERPARTS = [
    ("alexnet", "alexnet"), ("vgg11", "vgg11"), ("vgg13", "vgg13"), ("vgg16", "vgg16"), ("vgg19", "vgg19"),
    ("vgg11_bn", "vgg11_bn"), ("vgg13_bn", "vgg13_bn"), ("vgg16_bn", "vgg16_bn"), ("vgg19_bn", "vgg19_bn"),
    ("vgg_a", "vgg11"), ("vgg_b", "vgg13"), ("vgg_d", "vgg16"), ("vgg_e", "vgg19"), ("googlenet", "googlenet"),
]


@pytest.mark.parametrize("ours, theirs", TV_COUNTERPARTS)
def test_converter_maps_every_key_and_shape(ours, theirs):
    kwargs = {} if theirs == "alexnet" else {"init_weights": False}
    with torch.device("meta"):
        tv = getattr(torchvision.models, theirs)(weights=None, **kwargs)
    model = meta(ours)
    converted = model.convert_torchvision_state_dict(tv.state_dict())
    check_state_dict(model, converted)  # raises CheckpointError on any missing/extra key or shape


def randomise_batch_norm(model: nn.Module) -> None:
    """Non-trivial running statistics and affine terms, so a mix-up in the mapping shows."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize(
    "name, side, kwargs",
    [
        ("alexnet", 80, {}),
        ("vgg11", 32, {"init_weights": False}),
        ("vgg11_bn", 32, {"init_weights": False}),
        # torchvision's transform_input re-normalises inputs for its TF-ported weights: off
        ("googlenet", 64, {"init_weights": True, "aux_logits": True, "transform_input": False}),
    ],
)
def test_torchvision_parity(name, side, kwargs):
    torch.manual_seed(0)
    with torch.no_grad():
        tv = getattr(torchvision.models, name)(weights=None, num_classes=10, **kwargs).eval()
        randomise_batch_norm(tv)
        model = convzoo.create_model(name, num_classes=10)
        convzoo.load_torchvision_weights(model, tv.state_dict())
        model.eval()
        x = torch.randn(2, 3, side, side)
        expected, got = tv(x), model(x)
    assert expected.abs().max() > 1e-3  # not a trivially zero output
    assert (got - expected).abs().max() <= 1e-5


def test_googlenet_aux_heads_match_torchvision():
    torch.manual_seed(0)
    with torch.no_grad():
        tv = torchvision.models.googlenet(weights=None, num_classes=10, aux_logits=True, transform_input=False, init_weights=False).eval()
        randomise_batch_norm(tv)
        model = convzoo.create_model("googlenet", num_classes=10, aux_logits=True)
        convzoo.load_torchvision_weights(model, tv.state_dict())
        model.eval()
        for ours, theirs, c in ((model.aux1, tv.aux1, 512), (model.aux2, tv.aux2, 528)):
            f = torch.randn(2, c, 14, 14)
            assert (ours(f) - theirs(f)).abs().max() <= 1e-5


def test_wrong_architecture_is_a_checkpoint_error():
    with torch.device("meta"):
        vgg13 = torchvision.models.vgg13(weights=None, init_weights=False).state_dict()
        alexnet = torchvision.models.alexnet(weights=None).state_dict()
        vgg11_bn = torchvision.models.vgg11_bn(weights=None, init_weights=False).state_dict()
    with torch.device("meta"):
        vgg11 = convzoo.create_model("vgg11")
        googlenet = convzoo.create_model("googlenet")
    with pytest.raises(CheckpointError, match="vgg11"):
        convzoo.load_torchvision_weights(vgg11, vgg13)
    with pytest.raises(CheckpointError, match="unexpected|missing|shape"):
        convzoo.load_torchvision_weights(vgg11, vgg11_bn)
    with pytest.raises(CheckpointError, match="missing"):
        convzoo.load_torchvision_weights(googlenet, alexnet)


@pytest.mark.parametrize("name", ["vgg_a_lrn", "vgg_c", "alexnet_paper", "googlenet_paper", "lenet5_paper"])
def test_no_torchvision_counterpart_is_a_clear_error(name):
    with torch.device("meta"):
        tv = torchvision.models.alexnet(weights=None).state_dict()
    with pytest.raises(CheckpointError, match="counterpart"):
        convzoo.load_torchvision_weights(meta(name), tv)
