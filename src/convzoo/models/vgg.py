"""VGG.

Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015.

Every column of the paper's Table 1 (the lecture's "VGG Net (Variations)"): A, A-LRN, B, C,
D, E, as `vgg_a`, `vgg_a_lrn`, `vgg_b`, `vgg_c`, `vgg_d`, `vgg_e`; the usual names `vgg11`,
`vgg13`, `vgg16`, `vgg19` for A, B, D, E; and the batch-norm twins `vgg11_bn` ... `vgg19_bn`
(a BatchNorm2d between each convolution and its ReLU, the convolution keeping its bias, as
torchvision has them; the paper has no batch norm, which came later).

Five stages of 3x3 convolutions (padding 1, ReLU) each closed by a 2x2/2 max-pool, then
FC-4096, FC-4096 (ReLU, dropout 0.5 after each, section 3.1) and FC-classes. A-LRN puts the
AlexNet LRN (k=2, n=5, alpha=1e-4, beta=0.75) after the first convolution's ReLU; C closes
each of its last three stages with a 1x1 convolution (with ReLU).

Deviation from the paper, as in torchvision: an `AdaptiveAvgPool2d((7, 7))` before the
classifier, so inputs from 32x32 up work. At the paper's 224x224 the maps are already 7x7
and it is the identity; at 32x32 it copies the 1x1 map to 7x7. Weights are initialised as
torchvision does (Kaiming normal for convolutions, N(0, 0.01) for FC layers, zero biases);
the paper trained A from N(0, 0.01) and initialised the deeper nets from A, then noted that
Glorot initialisation works without pre-training.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CheckpointError
from ..interop import rename_modules
from ..layers import LRN, ConvNormAct
from ..layers.lrn import LRN_ARGS
from .base import ZooModel, classifier
from .family import Published, register_specs

PAPER = "Simonyan and Zisserman, Very Deep Convolutional Networks for Large-Scale Image Recognition, ICLR 2015"


@dataclass(frozen=True)
class VGGSpec:
    """One column of Table 1.

    `stages`: `(num_3x3_convs, width)` per stage. `lrn`: LRN after the first convolution
    (A-LRN). `conv1x1_last`: how many of the last stages end with an extra 1x1 convolution
    (C: 3). `batch_norm`: the BN twin.
    """

    column: str
    stages: tuple[tuple[int, int], ...]
    lrn: bool = False
    conv1x1_last: int = 0
    batch_norm: bool = False

    @property
    def has_torchvision(self) -> bool:
        """torchvision ships A, B, D, E (plain and BN), not A-LRN nor C."""
        return not self.lrn and not self.conv1x1_last


_A = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))
_B = ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512))
_D = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
_E = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))

#: Table 1, keyed by public name.
SPECS: dict[str, VGGSpec] = {
    "vgg_a": VGGSpec("A", _A),
    "vgg_a_lrn": VGGSpec("A-LRN", _A, lrn=True),
    "vgg_b": VGGSpec("B", _B),
    "vgg_c": VGGSpec("C", _B, conv1x1_last=3),
    "vgg_d": VGGSpec("D", _D),
    "vgg_e": VGGSpec("E", _E),
    "vgg11": VGGSpec("A", _A),
    "vgg13": VGGSpec("B", _B),
    "vgg16": VGGSpec("D", _D),
    "vgg19": VGGSpec("E", _E),
    "vgg11_bn": VGGSpec("A", _A, batch_norm=True),
    "vgg13_bn": VGGSpec("B", _B, batch_norm=True),
    "vgg16_bn": VGGSpec("D", _D, batch_norm=True),
    "vgg19_bn": VGGSpec("E", _E, batch_norm=True),
}


def _tv(params: int, gmacs: float, where: str) -> Published:
    """torchvision's metadata: num_params, and GFLOPS that are MACs (3 decimals)."""
    return Published(params, round(gmacs * 1e9), f"{where}: params, GFLOPS {gmacs} (MACs, 3 decimals)")


#: Published per name. Plain counts: torchvision's metadata (A, B, D, E) and issue 2
#: (A-LRN = A; C counted from Table 1, 134M in Table 2); BN counts: torchvision's metadata.
PUBLISHED: dict[str, Published] = {
    "vgg_a": _tv(132_863_336, 7.609, "torchvision vgg11"),
    "vgg_a_lrn": Published(132_863_336, None, "issue 2 (A-LRN has A's weights; paper Table 2: 133M)"),
    "vgg_b": _tv(133_047_848, 11.308, "torchvision vgg13"),
    "vgg_c": Published(133_638_952, None, "issue 2 (paper Table 2: 134M)"),
    "vgg_d": _tv(138_357_544, 15.470, "torchvision vgg16"),
    "vgg_e": _tv(143_667_240, 19.632, "torchvision vgg19"),
    "vgg11": _tv(132_863_336, 7.609, "torchvision vgg11"),
    "vgg13": _tv(133_047_848, 11.308, "torchvision vgg13"),
    "vgg16": _tv(138_357_544, 15.470, "torchvision vgg16"),
    "vgg19": _tv(143_667_240, 19.632, "torchvision vgg19"),
    "vgg11_bn": _tv(132_868_840, 7.609, "torchvision vgg11_bn"),
    "vgg13_bn": _tv(133_053_736, 11.308, "torchvision vgg13_bn"),
    "vgg16_bn": _tv(138_365_992, 15.470, "torchvision vgg16_bn"),
    "vgg19_bn": _tv(143_678_248, 19.632, "torchvision vgg19_bn"),
}


class VGG(ZooModel):
    """VGG built from a `VGGSpec`: `stages.N` (convs `convJ`, optional `lrn`, `pool`), then
    `pool` (adaptive 7x7) -> `flatten` -> `pre_logits` (fc1, act1, drop1, fc2, act2, drop2) -> `fc`."""

    def __init__(
        self,
        spec: VGGSpec,
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.stages = nn.Sequential()
        self.feature_info = []
        channels = in_channels
        first_1x1 = len(spec.stages) - spec.conv1x1_last
        for s, (num_convs, width) in enumerate(spec.stages):
            stage = nn.Sequential()
            kernels = [3] * num_convs + ([1] if s >= first_1x1 else [])
            for j, k in enumerate(kernels, start=1):
                stage.add_module(f"conv{j}", ConvNormAct(channels, width, k, norm=spec.batch_norm, bias=True))
                channels = width
                if spec.lrn and s == 0 and j == 1:  # section 2.1: the LRN of Krizhevsky et al. 2012
                    stage.add_module("lrn", LRN(**LRN_ARGS))
            stage.add_module("pool", nn.MaxPool2d(2, 2))
            self.stages.add_module(str(s), stage)
            self.feature_info.append({"module": f"stages.{s}", "channels": width, "reduction": 2 ** (s + 1)})
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.flatten = nn.Flatten()
        self.pre_logits = nn.Sequential(
            OrderedDict(
                fc1=nn.Linear(channels * 7 * 7, 4096),
                act1=nn.ReLU(),
                drop1=nn.Dropout(dropout),
                fc2=nn.Linear(4096, 4096),
                act2=nn.ReLU(),
                drop2=nn.Dropout(dropout),
            )
        )
        self.fc = classifier(4096, num_classes)
        self.num_features, self.head_hidden_size = channels, 4096
        self._init_weights()

    def _init_weights(self) -> None:
        if self._is_meta():  # nothing to initialise on the meta device
            return
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.flatten(self.pool(x)))
        return x if pre_logits else self.fc(x)

    def convert_torchvision_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename torchvision's `features.N` / `classifier.N` keys to ours.

        torchvision lays out `features` as [conv, (bn), relu] per convolution and a max-pool
        after each stage, so the index of each of our layers follows from the spec.
        """
        if not self.spec.has_torchvision:
            raise CheckpointError(
                f"VGG configuration {self.spec.column} has no torchvision counterpart "
                "(torchvision ships A, B, D, E as vgg11/13/16/19 and their _bn twins)"
            )
        mapping: dict[str, str] = {}
        index = 0
        for s, stage in enumerate(self.stages):
            for name, block in stage.named_children():
                if not isinstance(block, ConvNormAct):
                    continue
                mapping[f"features.{index}"] = f"stages.{s}.{name}.conv"
                if self.spec.batch_norm:
                    mapping[f"features.{index + 1}"] = f"stages.{s}.{name}.norm"
                index += 3 if self.spec.batch_norm else 2
            index += 1  # the stage's max-pool
        mapping.update({"classifier.0": "pre_logits.fc1", "classifier.3": "pre_logits.fc2", "classifier.6": "fc"})
        return rename_modules(state_dict, mapping)


def _describe(spec: VGGSpec) -> str:
    layers = sum(n for n, _ in spec.stages) + spec.conv1x1_last + 3
    extras = [x for x, on in (("LRN", spec.lrn), ("1x1 convs", spec.conv1x1_last), ("batch norm", spec.batch_norm)) if on]
    return f"VGG configuration {spec.column}, {layers} weight layers" + (f" ({', '.join(extras)})" if extras else "")


register_specs(
    SPECS,
    model=VGG,
    family="vgg",
    paper=PAPER,
    default_input=(3, 224, 224),
    min_input=32,
    published=PUBLISHED,
    options=("dropout",),
    description=lambda name, spec: _describe(spec),
    doc=lambda name, spec: f"Build `{name}` (VGG configuration {spec.column}; see `convzoo.models.vgg`).",
)
