"""ResNet, plain networks and pre-activation ResNets.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016: the ImageNet
networks of Table 1, the plain baselines of sec. 4.1 and the CIFAR-10 networks of sec. 4.2.
He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016: the residual
unit variants of Fig. 4 (`unit=`, accepted by every network here) and the pre-activation
ResNet-164 / ResNet-1001 for CIFAR.

Deliberate choices and deviations:
- `resnet50/101/152` put the downsampling stride in the 3x3 convolution as torchvision does
  ("ResNet v1.5", vision issue #191); `resnet*_paper` put it in the first 1x1 as the paper
  does. Same parameters; the paper's placement costs the 3.8/7.6/11.3 GMACs of Table 1.
- ImageNet networks use shortcut B (the paper's default for 50/101/152; Table 2 used A
  for ResNet-18/34, pass `shortcut="A"` for that); CIFAR networks use A (sec. 4.2).
- Pre-activation networks (`unit="relu_only_preact"` or `"full_preact"`) have no BN-ReLU in
  the stem: the first unit of each stage applies its pre-activation before splitting into
  the two paths (the authors' code), and a final BN-ReLU precedes the pooling. With full
  pre-activation, projection shortcuts have no BN of their own (they see normalised input).
- Pre-activation CIFAR bottlenecks put the stride in the first 1x1, as the authors' code.
- Initialisation: He (normal, fan_out, as fb.resnet.torch and torchvision), BN gamma=1 and
  beta=0; `zero_init_residual=True` zeroes the last weighted layer of every residual branch
  (off by default, not in the papers).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..meta import clone_meta
from ..layers.residual import (
    BLOCK_KINDS,
    SHORTCUT_KINDS,
    STRIDE_PLACEMENTS,
    ResidualUnit,
    check_choice,
    unit_variant,
)
from .base import ZooModel, check_num_classes, classifier
from .family import Published, register_specs

PAPER = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
PAPER_PREACT = "He et al., Identity Mappings in Deep Residual Networks, ECCV 2016"


@dataclass(frozen=True)
class ResNetSpec:
    """One column of Table 1 (or one CIFAR depth): what a builder needs to make the network.

    `widths` are the stage widths as the paper's brackets write them (the bottleneck's
    inner width; the output is 4x that for bottlenecks). `stem` is "imagenet" (7x7/2 conv,
    3x3/2 max-pool) or "cifar" (3x3 conv, 16 filters).
    """

    block: str
    depths: tuple[int, ...]
    widths: tuple[int, ...]
    stem: str = "imagenet"
    stride_in: str = "3x3"
    shortcut: str = "B"
    unit: str = "original"

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def stem_width(self) -> int:
        return 64 if self.stem == "imagenet" else 16

    @property
    def default_classes(self) -> int:
        return 1000 if self.stem == "imagenet" else 10


IMAGENET_WIDTHS = (64, 128, 256, 512)
CIFAR_WIDTHS = (16, 32, 64)


def _cifar(depth: int, *, shortcut: str = "A") -> ResNetSpec:
    # sec. 4.2: 6n+2 layers, n basic units per stage on 32/16/8 maps
    return ResNetSpec("basic", ((depth - 2) // 6,) * 3, CIFAR_WIDTHS, "cifar", shortcut=shortcut)


def _preact_cifar(depth: int) -> ResNetSpec:
    # ECCV 2016 sec. 4: bottleneck units, 9n+2 layers, outputs 64/128/256
    return ResNetSpec("bottleneck", ((depth - 2) // 9,) * 3, CIFAR_WIDTHS, "cifar", "1x1", "B", "full_preact")


_R50, _R101, _R152 = (3, 4, 6, 3), (3, 4, 23, 3), (3, 8, 36, 3)

#: The zoo's ResNets, keyed by registry name; reads like Table 1 plus sec. 4.2.
SPECS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2), IMAGENET_WIDTHS),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3), IMAGENET_WIDTHS),
    "resnet50": ResNetSpec("bottleneck", _R50, IMAGENET_WIDTHS),
    "resnet101": ResNetSpec("bottleneck", _R101, IMAGENET_WIDTHS),
    "resnet152": ResNetSpec("bottleneck", _R152, IMAGENET_WIDTHS),
    "resnet50_paper": ResNetSpec("bottleneck", _R50, IMAGENET_WIDTHS, stride_in="1x1"),
    "resnet101_paper": ResNetSpec("bottleneck", _R101, IMAGENET_WIDTHS, stride_in="1x1"),
    "resnet152_paper": ResNetSpec("bottleneck", _R152, IMAGENET_WIDTHS, stride_in="1x1"),
    "plain18": ResNetSpec("basic", (2, 2, 2, 2), IMAGENET_WIDTHS, shortcut="none"),
    "plain34": ResNetSpec("basic", (3, 4, 6, 3), IMAGENET_WIDTHS, shortcut="none"),
    **{f"resnet{d}": _cifar(d) for d in (20, 32, 44, 56, 110, 1202)},
    **{f"plain{d}": _cifar(d, shortcut="none") for d in (20, 32, 44, 56, 110)},
    "preact_resnet164": _preact_cifar(164),
    "preact_resnet1001": _preact_cifar(1001),
}


_TV = "torchvision ResNet weights metadata (GFLOPS there are MACs, 224x224)"
_T1 = "He et al. 2016 Table 1 (FLOPs there are multiply-adds, 224x224)"
# Table 6 prints millions (0.27M ...); no exact count was published. The option-A networks
# the paper describes have 2,752 parameters fewer than the often-quoted 272,474 (ResNet-20)
# family of counts, which are those of B projections at the two downsampling units.
_T6 = "He et al. 2016 Table 6 gives {}M (rounded; option A)"

#: registry name -> the numbers published for it, with their source
PUBLISHED: dict[str, Published] = {
    "resnet18": Published(11_689_512, 1_814_000_000, _TV),
    "resnet34": Published(21_797_672, 3_664_000_000, _TV),
    "resnet50": Published(25_557_032, 4_089_000_000, _TV),
    "resnet101": Published(44_549_160, 7_801_000_000, _TV),
    "resnet152": Published(60_192_808, 11_514_000_000, _TV),
    "resnet50_paper": Published(25_557_032, 3_800_000_000, f"params: {_TV}; MACs: {_T1}"),
    "resnet101_paper": Published(44_549_160, 7_600_000_000, f"params: {_TV}; MACs: {_T1}"),
    "resnet152_paper": Published(60_192_808, 11_300_000_000, f"params: {_TV}; MACs: {_T1}"),
    "plain18": Published(None, 1_800_000_000, _T1),
    "plain34": Published(None, 3_600_000_000, f"{_T1}; sec. 3.3"),
    "resnet20": Published(source=_T6.format("0.27")),
    "resnet32": Published(source=_T6.format("0.46")),
    "resnet44": Published(source=_T6.format("0.66")),
    "resnet56": Published(source=_T6.format("0.85")),
    "resnet110": Published(source=_T6.format("1.7")),
    "resnet1202": Published(source=_T6.format("19.4")),
    **{f"plain{d}": Published(source="He et al. 2016 Fig. 6 (no counts published)") for d in (20, 32, 44, 56, 110)},
    "preact_resnet164": Published(source="He et al. ECCV 2016 gives 1.7M (rounded)"),
    "preact_resnet1001": Published(
        source="He et al. ECCV 2016 gives 10.2M (rounded; conv and fc weights only, BN adds 0.15M)"
    ),
}

DESCRIPTIONS: dict[str, str] = {
    "resnet18": "ResNet-18, shortcut B",
    "resnet34": "ResNet-34, shortcut B",
    "resnet50": "ResNet-50, stride in the 3x3 (v1.5)",
    "resnet101": "ResNet-101, stride in the 3x3 (v1.5)",
    "resnet152": "ResNet-152, stride in the 3x3 (v1.5)",
    "resnet50_paper": "ResNet-50, stride in the first 1x1",
    "resnet101_paper": "ResNet-101, stride in the first 1x1",
    "resnet152_paper": "ResNet-152, stride in the first 1x1",
    "plain18": "18-layer plain baseline (no shortcuts)",
    "plain34": "34-layer plain baseline (no shortcuts)",
    "resnet20": "CIFAR ResNet-20 (n=3), shortcut A",
    "resnet32": "CIFAR ResNet-32 (n=5), shortcut A",
    "resnet44": "CIFAR ResNet-44 (n=7), shortcut A",
    "resnet56": "CIFAR ResNet-56 (n=9), shortcut A",
    "resnet110": "CIFAR ResNet-110 (n=18), shortcut A",
    "resnet1202": "CIFAR ResNet-1202 (n=200), shortcut A",
    **{f"plain{d}": f"CIFAR plain-{d} (no shortcuts)" for d in (20, 32, 44, 56, 110)},
    "preact_resnet164": "CIFAR pre-activation ResNet-164, bottleneck units",
    "preact_resnet1001": "CIFAR pre-activation ResNet-1001, bottleneck units",
}


def _family(name: str, spec: ResNetSpec) -> str:
    if spec.shortcut == "none":
        return "plain"
    return "preact_resnet" if unit_variant(spec.unit).preact else "resnet"


#: Keyword options every ResNet builder accepts besides num_classes and in_channels.
OPTIONS = ("unit", "shortcut", "stride_in", "zero_init_residual")


class ResNet(ZooModel):
    """A residual (or plain) network built from a `ResNetSpec`.

    Modules: `stem` (conv, norm, act, pool), `stages.N` (residual units `stages.N.M`),
    `final` (BN-ReLU for pre-activation units, identity otherwise), `head` (pool, flatten, fc).
    """

    classifier_name = "head.fc"

    def __init__(
        self,
        spec: ResNetSpec,
        *,
        num_classes: int | None = None,
        in_channels: int = 3,
        unit: str | None = None,
        shortcut: str | None = None,
        stride_in: str | None = None,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        spec = replace(
            spec,
            unit=spec.unit if unit is None else unit,
            shortcut=spec.shortcut if shortcut is None else shortcut,
            stride_in=spec.stride_in if stride_in is None else stride_in,
        )
        variant = unit_variant(spec.unit)
        check_choice("shortcut", spec.shortcut, SHORTCUT_KINDS)
        check_choice("stride_in", spec.stride_in, STRIDE_PLACEMENTS)
        check_choice("block", spec.block, BLOCK_KINDS)
        num_classes = spec.default_classes if num_classes is None else num_classes
        check_num_classes(num_classes)
        _check_positive(in_channels=in_channels)
        self.spec = spec
        self.num_classes = num_classes
        self.in_channels = in_channels

        stem: OrderedDict[str, nn.Module] = OrderedDict()
        width = spec.stem_width
        if spec.stem == "imagenet":
            stem["conv"] = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
        else:
            stem["conv"] = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        if not variant.preact:  # a pre-activation unit normalises the stem's output itself
            stem["norm"] = nn.BatchNorm2d(width)
            stem["act"] = nn.ReLU(inplace=True)
        reduction = 1
        if spec.stem == "imagenet":
            stem["pool"] = nn.MaxPool2d(3, 2, 1)
            reduction = 4
        self.stem = nn.Sequential(stem)

        stages: list[nn.Module] = []
        self.feature_info = []
        channels = width
        for i, (depth, w) in enumerate(zip(spec.depths, spec.widths)):
            out = w * spec.expansion
            stride = 1 if i == 0 else 2
            units = []
            for j in range(depth):
                if j >= 2 and _on_meta(units[1]):  # units 1.. are identical: copy, don't rebuild
                    units.append(clone_meta(units[1]))
                    continue
                units.append(
                    ResidualUnit(
                        channels,
                        out,
                        stride if j == 0 else 1,
                        block=spec.block,
                        width=w,
                        stride_in=spec.stride_in,
                        unit=spec.unit,
                        shortcut=spec.shortcut,
                        share_preact=j == 0,
                    )
                )
                channels = out
            reduction *= stride
            stages.append(nn.Sequential(*units))
            self.feature_info.append({"module": f"stages.{i}", "channels": out, "reduction": reduction})
        self.stages = nn.Sequential(*stages)
        if variant.preact:  # ECCV 2016: an extra BN-ReLU after the last addition
            self.final: nn.Module = nn.Sequential(
                OrderedDict(norm=nn.BatchNorm2d(channels), act=nn.ReLU(inplace=True))
            )
        else:
            self.final = nn.Identity()
        self.num_features = self.head_hidden_size = channels
        self.head = nn.Sequential(
            OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(1), fc=classifier(channels, num_classes))
        )
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        if self._is_meta():
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, ResidualUnit) and m.shortcut is not None:
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head.flatten(self.head.pool(x))
        return x if pre_logits else self.head.fc(x)

    def convert_torchvision_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename torchvision ResNet keys (conv1, bn1, layerN.M.convK/bnK, downsample, fc) to ours.

        Weights of torchvision's resnet50/101/152 also load into the `*_paper` networks (only
        the stride differs), but their outputs then differ from torchvision's.
        """
        if self.spec.stem != "imagenet" or self.spec.unit != "original":
            raise CheckpointError(
                "torchvision has only ImageNet ResNets with the original unit; "
                f"this model has a {self.spec.stem} stem and {self.spec.unit!r} units"
            )
        return convert_torchvision_resnet(state_dict)


def convert_torchvision_resnet(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key renaming from torchvision's ResNet names to convzoo's (shapes are checked by the loader)."""
    import re

    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = key
        if key.startswith("conv1."):
            new = "stem.conv." + key[len("conv1.") :]
        elif key.startswith("bn1."):
            new = "stem.norm." + key[len("bn1.") :]
        elif key.startswith("fc."):
            new = "head.fc." + key[len("fc.") :]
        else:
            m = re.match(r"layer(\d+)\.(\d+)\.(.*)$", key)
            if m is not None:
                stage, unit, rest = int(m.group(1)) - 1, m.group(2), m.group(3)
                rest = re.sub(r"^conv(\d)\.", r"branch.conv\1.", rest)
                rest = re.sub(r"^bn(\d)\.", r"branch.norm\1.", rest)
                rest = re.sub(r"^downsample\.0\.", "shortcut.conv.", rest)
                rest = re.sub(r"^downsample\.1\.", "shortcut.norm.", rest)
                new = f"stages.{stage}.{unit}.{rest}"
        out[new] = value
    return out


def _on_meta(module: nn.Module) -> bool:
    """True when `module` was built on the meta device (its first parameter is a meta tensor)."""
    first = next(module.parameters(), None)
    return first is not None and first.is_meta


def _check_positive(allow_zero: bool = False, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < (0 if allow_zero else 1):
            least = "0 (no classifier) or more" if allow_zero else "a positive integer"
            raise ConfigError(f"{name} must be {least}, got {value!r}")


register_specs(
    SPECS,
    model=ResNet,
    family=_family,
    paper=lambda name, spec: PAPER_PREACT if unit_variant(spec.unit).preact else PAPER,
    default_input=lambda name, spec: (3, 224, 224) if spec.stem == "imagenet" else (3, 32, 32),
    # checked by a meta forward in eval mode (tests/test_models_resnet.py): every conv
    # and pool here keeps a 1x1 map alive, so any square side runs
    min_input=1,
    num_classes=lambda name, spec: spec.default_classes,
    published=PUBLISHED,
    options=OPTIONS,
    description=DESCRIPTIONS,
)
