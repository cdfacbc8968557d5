"""ResNet, plain and pre-activation ResNet: exact numbers, unit variants, shortcuts, torchvision parity.

Large networks are built on the meta device (shapes only); real forward/backward runs only on
small CIFAR networks at small inputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import convzoo
from convzoo.errors import CheckpointError, ConfigError
from convzoo.layers.residual import UNIT_VARIANTS, ResidualUnit, ZeroPadShortcut
from convzoo.registry import model_info

IMAGENET = (64, 128, 256, 512)
IMAGENET_BOTTLENECK = (256, 512, 1024, 2048)
IMAGENET_RED = (4, 8, 16, 32)
CIFAR = (16, 32, 64)
CIFAR_RED = (1, 2, 4)

# name: (exact parameters at the default classes, per-stage channels, per-stage reductions)
EXPECTED = {
    "resnet18": (11_689_512, IMAGENET, IMAGENET_RED),
    "resnet34": (21_797_672, IMAGENET, IMAGENET_RED),
    "resnet50": (25_557_032, IMAGENET_BOTTLENECK, IMAGENET_RED),
    "resnet101": (44_549_160, IMAGENET_BOTTLENECK, IMAGENET_RED),
    "resnet152": (60_192_808, IMAGENET_BOTTLENECK, IMAGENET_RED),
    "resnet50_paper": (25_557_032, IMAGENET_BOTTLENECK, IMAGENET_RED),
    "resnet101_paper": (44_549_160, IMAGENET_BOTTLENECK, IMAGENET_RED),
    "resnet152_paper": (60_192_808, IMAGENET_BOTTLENECK, IMAGENET_RED),
    # resnet18/34 minus the three B projections (1x1 conv + BN): 173,824 parameters
    "plain18": (11_515_688, IMAGENET, IMAGENET_RED),
    "plain34": (21_623_848, IMAGENET, IMAGENET_RED),
    # option A (the paper's CIFAR shortcut) has no shortcut parameters, so ResNet-d and
    # plain-d have the same count; see test_cifar_counts_closed_form
    "resnet20": (269_722, CIFAR, CIFAR_RED),
    "resnet32": (464_154, CIFAR, CIFAR_RED),
    "resnet44": (658_586, CIFAR, CIFAR_RED),
    "resnet56": (853_018, CIFAR, CIFAR_RED),
    "resnet110": (1_727_962, CIFAR, CIFAR_RED),
    "resnet1202": (19_421_274, CIFAR, CIFAR_RED),
    "plain20": (269_722, CIFAR, CIFAR_RED),
    "plain32": (464_154, CIFAR, CIFAR_RED),
    "plain44": (658_586, CIFAR, CIFAR_RED),
    "plain56": (853_018, CIFAR, CIFAR_RED),
    "plain110": (1_727_962, CIFAR, CIFAR_RED),
    "preact_resnet164": (1_703_258, (64, 128, 256), CIFAR_RED),
    "preact_resnet1001": (10_327_706, (64, 128, 256), CIFAR_RED),
}

# He et al. 2016 Table 6 and ECCV 2016 Table 3, in millions as printed
PUBLISHED_MILLIONS = {
    "resnet20": 0.27,
    "resnet32": 0.46,
    "resnet44": 0.66,
    "resnet56": 0.85,
    "resnet110": 1.7,
    "resnet1202": 19.4,
    "preact_resnet164": 1.7,
}

# the counts the issue lists for the CIFAR ResNets are those of option B (a 1x1 projection
# with BN at the two downsampling units: 576 + 2,176 = 2,752 more parameters)
ISSUE_COUNTS_WITH_B = {
    "resnet20": 272_474,
    "resnet32": 466_906,
    "resnet44": 661_338,
    "resnet56": 855_770,
    "resnet110": 1_730_714,
    "resnet1202": 19_424_026,
}


def meta_model(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return convzoo.create_model(name, **kw)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_linear_macs(model: nn.Module, shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of the conv and linear layers for one image (torchvision's convention)."""
    total = 0

    def hook(m: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        per_out = m.in_features if isinstance(m, nn.Linear) else m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        total += out[0].numel() * per_out

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.empty(1, *shape, device="meta"))
    for h in handles:
        h.remove()
    return total


def test_every_registered_resnet_is_in_the_table():
    names = {n for n in convzoo.list_models() if model_info(n).family in ("resnet", "plain", "preact_resnet")}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_numbers(name):
    params, channels, reductions = EXPECTED[name]
    info = model_info(name)
    model = meta_model(name)
    assert n_params(model) == params
    if info.params is not None:  # the published exact count
        assert n_params(model) == info.params
    assert [f["channels"] for f in model.feature_info] == list(channels)
    assert [f["reduction"] for f in model.feature_info] == list(reductions)
    assert [f["module"] for f in model.feature_info] == [f"stages.{i}" for i in range(len(channels))]
    assert model.num_classes == info.num_classes == (1000 if info.default_input[1] == 224 else 10)
    # shapes of every stage and of the logits at the default input, on the meta device
    c, h, w = info.default_input
    x = torch.empty(2, c, h, w, device="meta")
    model.eval()
    feats = model.stem(x)
    for stage, ch, red in zip(model.stages, channels, reductions):
        feats = stage(feats)
        assert tuple(feats.shape) == (2, ch, h // red, w // red)
    assert tuple(model(x).shape) == (2, info.num_classes)


@pytest.mark.parametrize("name", sorted(PUBLISHED_MILLIONS))
def test_counts_round_to_the_published_millions(name):
    millions = PUBLISHED_MILLIONS[name]
    digits = 1 if millions >= 1 else 2
    assert round(EXPECTED[name][0] / 1e6, digits) == millions


def test_preact_resnet1001_published_count_excludes_batch_norm():
    # the paper's 10.2M matches the conv and fc weights; BN adds 2 parameters per channel
    model = meta_model("preact_resnet1001")
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert round((n_params(model) - bn) / 1e6, 1) == 10.2
    assert round(n_params(model) / 1e6, 1) == 10.3


@pytest.mark.parametrize("name", sorted(ISSUE_COUNTS_WITH_B))
def test_cifar_resnets_with_projection_shortcuts(name):
    assert n_params(meta_model(name, shortcut="B")) == ISSUE_COUNTS_WITH_B[name]


def test_cifar_counts_closed_form():
    # sec. 4.2 by hand: 3x3 convs without bias, BN (2 per channel), option A shortcuts
    def count(n: int) -> int:
        total = 3 * 16 * 9 + 2 * 16  # first conv + BN
        c = 16
        for w in CIFAR:
            for _ in range(n):
                total += c * w * 9 + w * w * 9 + 2 * (2 * w)
                c = w
        return total + 64 * 10 + 10

    for depth in (20, 32, 44, 56, 110, 1202):
        assert EXPECTED[f"resnet{depth}"][0] == count((depth - 2) // 6)

    def preact(n: int) -> int:  # bottleneck 1x1-3x3-1x1, full pre-activation, conv-only projections
        total = 3 * 16 * 9
        c = 16
        for w in CIFAR:
            for j in range(n):
                total += 2 * c + c * w + 2 * w + 9 * w * w + 2 * w + w * 4 * w
                if j == 0:
                    total += c * 4 * w
                c = 4 * w
        return total + 2 * 256 + 256 * 10 + 10

    assert EXPECTED["preact_resnet164"][0] == preact(18)
    assert EXPECTED["preact_resnet1001"][0] == preact(111)


@pytest.mark.parametrize(
    "name, exact",
    [
        ("resnet18", 1_814_073_344),
        ("resnet34", 3_663_761_408),
        ("resnet50", 4_089_184_256),
        ("resnet101", 7_801_405_440),
        ("resnet152", 11_513_626_624),
        ("resnet50_paper", 3_857_973_248),
        ("resnet101_paper", 7_570_194_432),
        ("resnet152_paper", 11_282_415_616),
    ],
)
def test_macs_against_published(name, exact):
    macs = conv_linear_macs(meta_model(name), (3, 224, 224))
    assert macs == exact
    published = model_info(name).macs
    # torchvision prints 3 decimals (GMACs); the paper 1 decimal (3.86 is printed as 3.8)
    tolerance = 0.0005 if not name.endswith("_paper") else 0.02
    assert abs(macs - published) / published < tolerance


def test_stride_placement():
    v15, paper = meta_model("resnet50"), meta_model("resnet50_paper")
    first = "stages.1.0.branch"
    assert v15.get_submodule(first + ".conv1").stride == (1, 1)
    assert v15.get_submodule(first + ".conv2").stride == (2, 2)
    assert paper.get_submodule(first + ".conv1").stride == (2, 2)
    assert paper.get_submodule(first + ".conv2").stride == (1, 1)


# Fig. 4 of "Identity Mappings": the layers before the branch, on it, and after the addition
UNIT_LAYOUT = {
    "original": ([], ["conv1", "norm1", "act1", "conv2", "norm2"], ["act"]),
    "bn_after_add": ([], ["conv1", "norm1", "act1", "conv2"], ["norm", "act"]),
    "relu_before_add": ([], ["conv1", "norm1", "act1", "conv2", "norm2", "act2"], []),
    "relu_only_preact": (["act"], ["conv1", "norm1", "act1", "conv2", "norm2"], []),
    "full_preact": (["norm", "act"], ["conv1", "norm1", "act1", "conv2"], []),
}


def _children(m: nn.Module) -> list[str]:
    return [n for n, _ in m.named_children()]


@pytest.mark.parametrize("unit", sorted(UNIT_LAYOUT))
def test_unit_variant_layout(unit):
    assert set(UNIT_VARIANTS) == set(UNIT_LAYOUT)
    before, branch, after = UNIT_LAYOUT[unit]
    u = ResidualUnit(16, 16, unit=unit)
    assert _children(u.preact) == before
    assert _children(u.branch) == branch
    assert _children(u.post) == after
    bottleneck = ResidualUnit(64, 64, block="bottleneck", unit=unit)
    assert [n for n in _children(bottleneck.branch) if n.startswith("conv")] == ["conv1", "conv2", "conv3"]


@pytest.mark.parametrize("unit", sorted(UNIT_LAYOUT))
def test_unit_variants_train_on_cifar_resnet(unit):
    torch.manual_seed(0)
    model = convzoo.create_model("resnet20", unit=unit)
    preact = UNIT_VARIANTS[unit].preact
    assert isinstance(model.final, nn.Identity) != preact  # ECCV 2016: final BN-ReLU
    assert ("norm" in _children(model.stem)) != preact
    x = torch.randn(2, 3, 8, 8)
    out = model(x)
    assert out.shape == (2, 10)
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model.forward_head(model.forward_features(x)), model(x))


def test_unit_option_accepted_by_every_builder():
    for name in ("resnet50_paper", "plain18", "preact_resnet164"):
        for unit in UNIT_VARIANTS:
            assert n_params(meta_model(name, unit=unit)) > 0


def test_invalid_options_raise_config_error():
    with pytest.raises(ConfigError, match="full_preact") as err:
        convzoo.create_model("resnet56", unit="preact")
    assert all(v in str(err.value) for v in UNIT_VARIANTS)
    with pytest.raises(ConfigError, match="'A', 'B', 'C'|A, B, C"):
        meta_model("resnet56", shortcut="D")
    with pytest.raises(ConfigError, match="stride_in"):
        meta_model("resnet50", stride_in="7x7")
    with pytest.raises(ConfigError, match="unknown ResNet option"):
        meta_model("resnet18", dropout=0.5)
    with pytest.raises(ConfigError, match="num_classes"):
        meta_model("resnet18", num_classes=-3)


def test_zero_pad_shortcut_is_option_a():
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0
    with pytest.raises(ConfigError):
        ZeroPadShortcut(32, 16, 1)


def test_shortcut_kinds():
    def kinds(model):
        return {type(u.shortcut).__name__ for stage in model.stages for u in stage}

    assert kinds(meta_model("resnet20")) == {"Identity", "ZeroPadShortcut"}
    assert kinds(meta_model("resnet18")) == {"Identity", "Sequential"}
    assert kinds(meta_model("resnet18", shortcut="C")) == {"Sequential"}
    assert kinds(meta_model("plain34")) == {"NoneType"}
    assert kinds(meta_model("resnet34", shortcut="A")) == {"Identity", "ZeroPadShortcut"}
    # Table 3: A has no extra parameters, C more than B
    a, b, c = (n_params(meta_model("resnet34", shortcut=s)) for s in "ABC")
    assert a < b < c


def test_plain_units_have_no_addition():
    torch.manual_seed(0)
    unit = ResidualUnit(8, 8, shortcut="none").eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        assert torch.equal(unit(x), unit.post(unit.branch(x)))


def test_zero_init_residual_starts_as_identity():
    torch.manual_seed(0)
    model = convzoo.create_model("resnet20", zero_init_residual=True).eval()
    unit = model.stages[0][1]  # identity shortcut, original unit: relu(x + 0) == x for x >= 0
    x = torch.relu(torch.randn(2, 16, 8, 8))
    with torch.no_grad():
        assert torch.equal(unit(x), x)
    default = convzoo.create_model("resnet20")
    assert torch.all(default.stages[0][1].branch.norm2.weight == 1)


def test_he_initialisation():
    torch.manual_seed(0)
    model = convzoo.create_model("resnet20")
    conv = model.stages[2][2].branch.conv2  # 64 -> 64, 3x3: fan_out = 576
    assert abs(conv.weight.std().item() - (2 / 576) ** 0.5) < 0.05 * (2 / 576) ** 0.5


def test_head_and_reset_classifier():
    torch.manual_seed(0)
    model = convzoo.create_model("resnet20", num_classes=7, in_channels=1).eval()
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, 64)
        model.reset_classifier(4)
        assert model(x).shape == (2, 4) and model.num_classes == 4
        model.reset_classifier(0)
        assert model(x).shape == (2, 64)


@pytest.mark.parametrize("name", ["resnet18", "resnet50_paper", "resnet20", "preact_resnet164", "plain34"])
def test_min_input_by_meta_forward(name):
    info = model_info(name)
    model = meta_model(name).eval()
    model(torch.empty(1, 3, info.min_input, info.min_input, device="meta"))  # must run
    assert info.min_input == 1  # nothing smaller exists


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_parity(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    model = convzoo.create_model(name).eval()
    convzoo.load_torchvision_weights(model, reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max().item() <= 1e-5
    if name == "resnet50":
        # the paper's stride placement loads the same weights but computes something else
        paper = convzoo.create_model("resnet50_paper").eval()
        convzoo.load_torchvision_weights(paper, reference.state_dict())
        with torch.no_grad():
            assert (paper(x) - reference(x)).abs().max().item() > 1e-3


def test_wrong_architecture_checkpoint():
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        sd = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(CheckpointError, match="missing"):
        convzoo.load_torchvision_weights(meta_model("resnet34"), sd)
    with pytest.raises(CheckpointError, match="shape mismatch|missing|unexpected"):
        convzoo.load_torchvision_weights(meta_model("resnet18", num_classes=10), sd)
    with pytest.raises(CheckpointError, match="CIFAR|cifar"):
        convzoo.load_torchvision_weights(meta_model("resnet20"), sd)


def test_residual_unit_shapes_property():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=25, deadline=None)
    @hypothesis.given(
        block=st.sampled_from(["basic", "bottleneck"]),
        unit=st.sampled_from(sorted(UNIT_VARIANTS)),
        shortcut=st.sampled_from(["A", "B", "C", "none"]),
        stride=st.sampled_from([1, 2]),
        stride_in=st.sampled_from(["1x1", "3x3"]),
        cin=st.sampled_from([4, 8]),
        grow=st.sampled_from([1, 2]),
        side=st.integers(1, 7),
    )
    def check(block, unit, shortcut, stride, stride_in, cin, grow, side):
        cout = cin * grow * (4 if block == "bottleneck" else 1)
        u = ResidualUnit(cin, cout, stride, block=block, unit=unit, shortcut=shortcut, stride_in=stride_in)
        x = torch.randn(2, cin, side, side)
        y = u(x)
        assert y.shape == (2, cout, -(-side // stride), -(-side // stride))
        # shortcut A adds no parameters; C projects even where B keeps the identity
        if shortcut == "A":
            assert not any(True for _ in u.shortcut.parameters())
        if shortcut == "C":
            assert isinstance(u.shortcut, nn.Sequential)

    check()
