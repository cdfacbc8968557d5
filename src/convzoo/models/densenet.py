"""DenseNet-BC for ImageNet and CIFAR.

Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks", CVPR 2017:
Table 1 (DenseNet-121/169/201/161 for ImageNet) and sec. 4 (DenseNet-BC for CIFAR).
Memory-efficient option after Pleiss et al., arXiv 1707.06990.

Every network here is "BC": bottleneck layers (BN-ReLU-Conv1x1 with 4k maps, then
BN-ReLU-Conv3x3 with k maps) and transitions with compression 0.5 (floor(theta * m)
maps). The ImageNet stem is a 7x7/2 conv with 2k filters (96 for DenseNet-161), BN, ReLU,
3x3/2 max-pool; the CIFAR stem is a single 3x3 conv with 2k filters and three blocks of
(L - 4) / 6 layers. After the last block: BN-ReLU, global average pool, linear classifier.

Deliberate choices and deviations:
- The paper's CIFAR runs without data augmentation add dropout 0.2; not offered here (the
  C10+ results, with augmentation, use none).
- Initialisation as torchvision: He normal (fan_in) for convs, BN gamma=1 beta=0, linear
  bias 0 (the paper's code uses He normal too).
- `memory_efficient=True` recomputes the concatenation/BN/ReLU/1x1 conv of every dense layer
  in backward (torch.utils.checkpoint, non-reentrant): same outputs and gradients, less
  memory, some extra compute. It is inactive under TorchScript and torch.fx tracing.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from ..layers.dense import DenseBlock, Transition
from .base import ZooModel, check_num_classes, classifier
from .family import Published, register_specs

PAPER = "Huang et al., Densely Connected Convolutional Networks, CVPR 2017"


@dataclass(frozen=True)
class DenseNetSpec:
    """One DenseNet: growth rate k, layers per block, initial features, bottleneck width
    factor (4: 4k maps), compression theta and stem ("imagenet" or "cifar")."""

    growth: int
    blocks: tuple[int, ...]
    init_features: int
    bn_size: int = 4
    compression: float = 0.5
    stem: str = "imagenet"

    @property
    def default_classes(self) -> int:
        return 1000 if self.stem == "imagenet" else 10


def _cifar_bc(depth: int, growth: int) -> DenseNetSpec:
    # sec. 4: three blocks; L = 6n + 4 for BC (two convs a layer, first conv, two
    # transitions, classifier); the first conv has 2k filters
    n = (depth - 4) // 6
    return DenseNetSpec(growth, (n, n, n), 2 * growth, stem="cifar")


#: Table 1 of the paper plus the CIFAR DenseNet-BC networks of Table 2.
SPECS: dict[str, DenseNetSpec] = {
    "densenet121": DenseNetSpec(32, (6, 12, 24, 16), 64),
    "densenet169": DenseNetSpec(32, (6, 12, 32, 32), 64),
    "densenet201": DenseNetSpec(32, (6, 12, 48, 32), 64),
    "densenet161": DenseNetSpec(48, (6, 12, 36, 24), 96),
    "densenet_bc_100_12": _cifar_bc(100, 12),
    "densenet_bc_250_24": _cifar_bc(250, 24),
    "densenet_bc_190_40": _cifar_bc(190, 40),
}

_TV = "torchvision DenseNet weights metadata (GFLOPS there are MACs, 224x224)"
#: registry name -> the numbers published for it, with their source
PUBLISHED: dict[str, Published] = {
    "densenet121": Published(7_978_856, 2_834_000_000, _TV),
    "densenet169": Published(14_149_480, 3_360_000_000, _TV),
    "densenet201": Published(20_013_928, 4_291_000_000, _TV),
    "densenet161": Published(28_681_000, 7_728_000_000, _TV),
    "densenet_bc_100_12": Published(source="Huang et al. 2017 Table 2 gives 0.8M (rounded)"),
    "densenet_bc_250_24": Published(source="Huang et al. 2017 Table 2 gives 15.3M (rounded)"),
    "densenet_bc_190_40": Published(source="Huang et al. 2017 Table 2 gives 25.6M (rounded)"),
}

DESCRIPTIONS: dict[str, str] = {
    "densenet121": "DenseNet-121 (k=32)",
    "densenet169": "DenseNet-169 (k=32)",
    "densenet201": "DenseNet-201 (k=32)",
    "densenet161": "DenseNet-161 (k=48, 96 initial features)",
    "densenet_bc_100_12": "CIFAR DenseNet-BC L=100 k=12",
    "densenet_bc_250_24": "CIFAR DenseNet-BC L=250 k=24",
    "densenet_bc_190_40": "CIFAR DenseNet-BC L=190 k=40",
}

#: Keyword options every DenseNet builder accepts besides num_classes and in_channels.
OPTIONS = ("memory_efficient",)


class DenseNet(ZooModel):
    """A DenseNet-BC built from a `DenseNetSpec`.

    Modules: `stem` (conv, norm, act, pool), `stages.N` (`transition` for N > 0, then
    `block`), `final` (BN-ReLU after the last block), `head` (pool, flatten, fc).
    """

    classifier_name = "head.fc"

    def __init__(
        self,
        spec: DenseNetSpec,
        *,
        num_classes: int | None = None,
        in_channels: int = 3,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        num_classes = spec.default_classes if num_classes is None else num_classes
        check_num_classes(num_classes)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ConfigError(f"in_channels must be an integer >= 1, got {in_channels!r}")
        if not isinstance(memory_efficient, bool):
            raise ConfigError(f"memory_efficient must be True or False, got {memory_efficient!r}")
        self.spec = spec
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.memory_efficient = memory_efficient

        channels = spec.init_features
        if spec.stem == "imagenet":
            self.stem = nn.Sequential(
                OrderedDict(
                    conv=nn.Conv2d(in_channels, channels, 7, 2, 3, bias=False),
                    norm=nn.BatchNorm2d(channels),
                    act=nn.ReLU(inplace=False),
                    pool=nn.MaxPool2d(3, 2, 1),
                )
            )
            reduction = 4
        else:  # sec. 4: "the first convolution layer" on the 32x32 input, no pooling
            self.stem = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_channels, channels, 3, 1, 1, bias=False)))
            reduction = 1

        stages: list[nn.Module] = []
        self.feature_info = []
        for i, num_layers in enumerate(spec.blocks):
            parts: OrderedDict[str, nn.Module] = OrderedDict()
            if i > 0:
                out = int(channels * spec.compression)  # floor(theta * m), sec. 3
                parts["transition"] = Transition(channels, out)
                channels = out
                reduction *= 2
            block = DenseBlock(num_layers, channels, spec.growth, spec.bn_size, memory_efficient)
            parts["block"] = block
            channels = block.out_channels
            stages.append(nn.Sequential(parts))
            self.feature_info.append({"module": f"stages.{i}", "channels": channels, "reduction": reduction})
        self.stages = nn.Sequential(*stages)
        self.final = nn.Sequential(OrderedDict(norm=nn.BatchNorm2d(channels), act=nn.ReLU(inplace=False)))
        self.num_features = self.head_hidden_size = channels
        self.head = nn.Sequential(
            OrderedDict(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(1), fc=classifier(channels, num_classes))
        )
        for m in self.modules() if not self._is_meta() else ():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.stages(self.stem(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head.flatten(self.head.pool(x))
        return x if pre_logits else self.head.fc(x)

    def convert_torchvision_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename torchvision DenseNet keys (features.conv0, denseblockN.denselayerM, transitionN,
        norm5, classifier) to ours. Old checkpoints' `norm.1`-style keys are mapped too."""
        if self.spec.stem != "imagenet":
            raise CheckpointError("torchvision has only the ImageNet DenseNets; this is a CIFAR DenseNet-BC")
        return convert_torchvision_densenet(state_dict)


def convert_torchvision_densenet(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Key renaming from torchvision's DenseNet names to convzoo's (shapes are checked by the loader)."""
    import re

    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        # checkpoints from before torchvision 0.3 wrote "norm.1" for "norm1" and so on
        new = re.sub(r"\.(norm|relu|conv)\.(\d)\.", r".\1\2.", key)
        m = re.match(r"features\.denseblock(\d+)\.denselayer(\d+)\.(.*)$", new)
        t = re.match(r"features\.transition(\d+)\.(.*)$", new)
        if new.startswith("features.conv0."):
            new = "stem.conv." + new[len("features.conv0.") :]
        elif new.startswith("features.norm0."):
            new = "stem.norm." + new[len("features.norm0.") :]
        elif new.startswith("features.norm5."):
            new = "final.norm." + new[len("features.norm5.") :]
        elif new.startswith("classifier."):
            new = "head.fc." + new[len("classifier.") :]
        elif m is not None:
            new = f"stages.{int(m.group(1)) - 1}.block.layers.{int(m.group(2)) - 1}.{m.group(3)}"
        elif t is not None:
            new = f"stages.{int(t.group(1))}.transition.{t.group(2)}"
        out[new] = value
    return out


register_specs(
    SPECS,
    model=DenseNet,
    family="densenet",
    paper=PAPER,
    default_input=lambda name, spec: (3, 224, 224) if spec.stem == "imagenet" else (3, 32, 32),
    # checked by meta forward (tests/test_models_densenet.py): the three 2x2/2
    # average pools need an 8x8 map after the stem (ImageNet: 29 -> 15 -> 8)
    min_input=lambda name, spec: 29 if spec.stem == "imagenet" else 4,
    num_classes=lambda name, spec: spec.default_classes,
    published=PUBLISHED,
    options=OPTIONS,
    description=DESCRIPTIONS,
)
