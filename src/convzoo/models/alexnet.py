"""AlexNet.

Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012.

`alexnet_paper` is the network of the paper's section 3 and Figure 2: five convolutions of
96-256-384-384-256 filters (11x11 stride 4 on a 227x227 input: the paper's "224x224" does
not give its 55x55 maps), ReLU, local response normalisation after the ReLU of conv1 and
conv2 (k=2, n=5, alpha=1e-4, beta=0.75 with the sum over the window, `layers.LRN`),
overlapping 3x3/2 max-pooling after both LRNs and after conv5, and 4096-4096-1000 fully
connected layers with dropout 0.5 on the outputs of the first two (60,965,224 parameters).
The two-GPU split is expressed as `groups=2` in conv2, conv4 and conv5, which see only the
maps of their own GPU; conv3 and the FC layers see all. It keeps the paper's fixed input
(227 to 258 pixels give the 6x6 maps the first FC layer needs) and its initialisation
(weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden FC layers, else 0).
Deviation: one device instead of two GPUs (the arithmetic is the same).

`alexnet` is torchvision's single-tower variant (Krizhevsky, "One weird trick for
parallelizing convolutional neural networks", 2014): 64-192-384-256-256 filters, 11x11
stride 4 with padding 2, no LRN, no groups, an adaptive 6x6 average pool before the
classifier (so inputs other than 224 work; at 224 it is the identity), dropout before the
first two FC layers (61,100,840 parameters). Its torchvision checkpoints load with
`convert_torchvision_state_dict`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from ..interop import rename_modules
from ..layers import LRN, ConvNormAct
from ..layers.lrn import LRN_ARGS
from .base import ZooModel, classifier
from .family import Published, register_specs

PAPER = "Krizhevsky, Sutskever, Hinton, ImageNet Classification with Deep Convolutional Neural Networks, NIPS 2012"
TRICK = "Krizhevsky, One weird trick for parallelizing convolutional neural networks, arXiv 1404.5997, 2014"


class Conv(NamedTuple):
    """One convolution of the table; `lrn` and `pool` say what follows its ReLU."""

    out: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    lrn: bool = False
    pool: bool = False


@dataclass(frozen=True)
class AlexNetSpec:
    """A row of the table: the convolutions, and how the classifier is laid out."""

    convs: tuple[Conv, ...]
    hidden: int = 4096
    #: side of the adaptive average pool before the classifier; None: the paper's fixed 6x6
    adaptive_pool: int | None = None
    #: torchvision drops out the *inputs* of the first two FC layers; the paper their outputs
    dropout_before_fc: bool = False
    paper_init: bool = False
    torchvision: bool = False


SPECS: dict[str, AlexNetSpec] = {
    "alexnet_paper": AlexNetSpec(
        convs=(
            Conv(96, 11, 4, 0, lrn=True, pool=True),
            Conv(256, 5, 1, 2, groups=2, lrn=True, pool=True),
            Conv(384, 3, 1, 1),
            Conv(384, 3, 1, 1, groups=2),
            Conv(256, 3, 1, 1, groups=2, pool=True),
        ),
        paper_init=True,
    ),
    "alexnet": AlexNetSpec(
        convs=(
            Conv(64, 11, 4, 2, pool=True),
            Conv(192, 5, 1, 2, pool=True),
            Conv(384, 3, 1, 1),
            Conv(256, 3, 1, 1),
            Conv(256, 3, 1, 1, pool=True),
        ),
        adaptive_pool=6,
        dropout_before_fc=True,
        torchvision=True,
    ),
}

class AlexNet(ZooModel):
    """AlexNet built from an `AlexNetSpec`: `stages.N` end at each max-pool, then
    `pool` -> `flatten` -> `pre_logits` (two hidden FC layers) -> `fc`."""

    def __init__(
        self,
        spec: AlexNetSpec,
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
        stage = nn.Sequential()
        channels, reduction = in_channels, 1
        self._tv_convs: list[str] = []  # our conv names in torchvision's order
        for i, c in enumerate(spec.convs, start=1):
            stage.add_module(f"conv{i}", ConvNormAct(channels, c.out, c.kernel, c.stride, c.padding, groups=c.groups))
            self._tv_convs.append(f"stages.{len(self.stages)}.conv{i}.conv")
            channels, reduction = c.out, reduction * c.stride
            if c.lrn:  # section 3.3: k=2, n=5, alpha=1e-4, beta=0.75
                stage.add_module("lrn", LRN(**LRN_ARGS))
            if c.pool:  # overlapping pooling, section 3.4: z=3, s=2
                stage.add_module("pool", nn.MaxPool2d(3, 2))
                reduction *= 2
                self.feature_info.append({"module": f"stages.{len(self.stages)}", "channels": channels, "reduction": reduction})
                self.stages.add_module(str(len(self.stages)), stage)
                stage = nn.Sequential()
        side = spec.adaptive_pool or 6
        self.pool = nn.AdaptiveAvgPool2d(side) if spec.adaptive_pool else nn.Identity()
        self.flatten = nn.Flatten()
        layers: list[tuple[str, nn.Module]] = []
        width = channels * side * side
        for j in (1, 2):
            fc_act = [(f"fc{j}", nn.Linear(width, spec.hidden)), (f"act{j}", nn.ReLU())]
            drop = [(f"drop{j}", nn.Dropout(dropout))]
            layers += drop + fc_act if spec.dropout_before_fc else fc_act + drop
            width = spec.hidden
        self.pre_logits = nn.Sequential(OrderedDict(layers))
        self.fc = classifier(spec.hidden, num_classes)
        self.num_features, self.head_hidden_size = channels, spec.hidden
        if spec.paper_init:
            self._paper_init()

    def _paper_init(self) -> None:
        # Section 5: weights from N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden
        # FC layers ("accelerates the early stages of learning by providing the ReLUs with
        # positive inputs"), 0 in the other layers.
        if self._is_meta():  # nothing to initialise on the meta device
            return
        ones = {"conv2", "conv4", "conv5", "fc1", "fc2"}
        for name, m in self.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.01)
                owner = name.rsplit(".", 2)[-2] if name.endswith(".conv") else name.rsplit(".", 1)[-1]
                nn.init.constant_(m.bias, 1.0 if owner in ones else 0.0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.flatten(self.pool(x)))
        return x if pre_logits else self.fc(x)

    def convert_torchvision_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename torchvision's `features.N` / `classifier.N` keys to ours."""
        if not self.spec.torchvision:
            return super().convert_torchvision_state_dict(state_dict)
        # torchvision: features = [conv, relu, (pool)] per conv; classifier = [drop, fc, relu] x2 + fc
        mapping: dict[str, str] = {}
        index = 0
        for name, c in zip(self._tv_convs, self.spec.convs):
            mapping[f"features.{index}"] = name
            index += 2 + int(c.pool)
        mapping.update({"classifier.1": "pre_logits.fc1", "classifier.4": "pre_logits.fc2", "classifier.6": "fc"})
        return rename_modules(state_dict, mapping)


#: registry name -> the numbers published for it, with their source
PUBLISHED: dict[str, Published] = {
    "alexnet_paper": Published(
        params=60_965_224,
        source="issue 2 / the paper's layer sizes (section 3.5, Figure 2): 60,965,224 counted from them",
    ),
    "alexnet": Published(
        params=61_100_840,
        macs=714_000_000,
        source="torchvision AlexNet_Weights.IMAGENET1K_V1 meta: num_params 61,100,840, GFLOPS 0.714 (MACs, 3 decimals)",
    ),
}

register_specs(
    SPECS,
    model=AlexNet,
    family="alexnet",
    paper={"alexnet_paper": PAPER, "alexnet": TRICK},
    default_input={"alexnet_paper": (3, 227, 227), "alexnet": (3, 224, 224)},
    min_input={"alexnet_paper": 227, "alexnet": 63},
    published=PUBLISHED,
    options=("dropout",),
    description={
        "alexnet_paper": "Krizhevsky 2012: 96-256-384-384-256, LRN, groups=2 for the two GPUs, fixed 227 input",
        "alexnet": "torchvision's single-tower AlexNet: 64-192-384-256-256, no LRN, adaptive 6x6 pool",
    },
)
