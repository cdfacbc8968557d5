"""GoogLeNet (Inception v1).

Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich, "Going Deeper
with Convolutions", CVPR 2015.

`googlenet_paper` is Table 1 row by row (the lecture's "Parameter Space and FLOPs" table):
7x7/2 convolution, 3x3/2 max-pool, LRN, 1x1 reduce + 3x3 convolution, LRN, 3x3/2 max-pool,
inception (3a) (3b), max-pool, (4a)...(4e), max-pool, (5a) (5b), average pool, dropout 40%,
linear. ReLU after every convolution, true 5x5 convolutions in the 5x5 branches. The
max-pools round up (Caffe's pooling arithmetic), which gives the table's 56/28/14/7 maps.
The two auxiliary classifiers (section 5) sit on (4a) and (4d): 5x5/3 average pool (4x4
output), 1x1 convolution to 128 + ReLU, FC 1024 + ReLU, dropout 70%, linear. They are used
in training mode only, where `forward` returns `GoogLeNetOutput(logits, aux1, aux2)` (a
tuple; the paper weights the auxiliary losses by 0.3); in eval mode `forward` returns the
logits, as at inference in the paper. `aux_logits=False` leaves them out.

Deviations of `googlenet_paper`, each the identity at the paper's 224x224 input:
- the final 7x7/1 average pool is a global average pool (`AdaptiveAvgPool2d(1)`), so inputs
  other than 224 work;
- each auxiliary head's 5x5/3 average pool is followed by `AdaptiveAvgPool2d(4)`, so its FC
  layer gets 4x4x128 inputs at other sizes too.
The paper gives no weight initialisation for the released architecture (DistBelief); we use
Kaiming normal (fan_out) for convolutions and N(0, 0.01) for linear layers.

`googlenet` is the batch-norm variant torchvision ships (6,624,904 parameters without the
auxiliary heads): batch norm (eps 1e-3) after every convolution, which then has no bias; no
LRN; a 3x3 kernel in the "5x5" branch (a known torchvision bug kept for its weights, vision
issue #906); a 2x2/2 max-pool before (5a) instead of 3x3/2; dropout 20%; auxiliary heads
with an adaptive 4x4 average pool, off by default (`aux_logits=True` adds them; torchvision's
released weights do not train them). Its checkpoints load with
`convert_torchvision_state_dict`, which drops torchvision's aux heads when the model has
none. torchvision's `transform_input` (re-normalising ImageNet inputs for the weights ported
from TensorFlow) is not part of the model; do that in the data pipeline.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple, Union

import torch
from torch import nn

from ..layers import LRN, ConvNormAct, InceptionBlock
from ..layers.lrn import LRN_ARGS
from .base import ZooModel, classifier
from .family import Published, register_specs

PAPER = "Szegedy et al., Going Deeper with Convolutions, CVPR 2015"

#: Table 1: #1x1, (#3x3 reduce, #3x3), (#5x5 reduce, #5x5), pool proj
INCEPTION: dict[str, tuple[int, tuple[int, int], tuple[int, int], int]] = {
    "3a": (64, (96, 128), (16, 32), 32),
    "3b": (128, (128, 192), (32, 96), 64),
    "4a": (192, (96, 208), (16, 48), 64),
    "4b": (160, (112, 224), (24, 64), 64),
    "4c": (128, (128, 256), (24, 64), 64),
    "4d": (112, (144, 288), (32, 64), 64),
    "4e": (256, (160, 320), (32, 128), 128),
    "5a": (256, (160, 320), (32, 128), 128),
    "5b": (384, (192, 384), (48, 128), 128),
}

#: the inception modules the auxiliary classifiers sit on (section 5)
AUX_TAPS = ("inception4a", "inception4d")
#: width of the auxiliary heads' hidden FC layer (section 5: "fully connected layer with 1024 units")
AUX_HIDDEN = 1024

@dataclass(frozen=True)
class GoogLeNetSpec:
    """What distinguishes the paper's network from torchvision's."""

    batch_norm: bool
    lrn: bool
    kernel5: int  # kernel of the "5x5" branch
    pool4_kernel: int  # max-pool before (5a)
    dropout: float
    aux_default: bool
    paper_aux_pool: bool  # 5x5/3 average pool (paper) or adaptive 4x4 (torchvision)
    torchvision: bool
    norm_eps: float = 1e-3


SPECS: dict[str, GoogLeNetSpec] = {
    "googlenet_paper": GoogLeNetSpec(
        batch_norm=False, lrn=True, kernel5=5, pool4_kernel=3, dropout=0.4, aux_default=True,
        paper_aux_pool=True, torchvision=False,
    ),
    "googlenet": GoogLeNetSpec(
        batch_norm=True, lrn=False, kernel5=3, pool4_kernel=2, dropout=0.2, aux_default=False,
        paper_aux_pool=False, torchvision=True,
    ),
}


# the functional form keeps real types (this module's annotations are postponed strings,
# which TorchScript cannot resolve in a NamedTuple)
GoogLeNetOutput = NamedTuple(
    "GoogLeNetOutput", [("logits", torch.Tensor), ("aux1", torch.Tensor), ("aux2", torch.Tensor)]
)
GoogLeNetOutput.__doc__ = """What `forward` returns in training mode when the auxiliary heads are on:
`logits`, `aux1` (the head on inception (4a)), `aux2` (the head on (4d)). torchvision returns
`(logits, aux_logits2, aux_logits1)`: the same heads in the other order."""


class AuxHead(nn.Module):
    """Auxiliary classifier: pool to 4x4, 1x1 conv 128 + ReLU, FC 1024 + ReLU, dropout, FC."""

    def __init__(
        self, in_channels: int, num_classes: int, *, paper_pool: bool, norm: bool, norm_eps: float, dropout: float
    ) -> None:
        super().__init__()
        if paper_pool:
            # 5x5/3 as in the paper (4x4 out of the 14x14 maps at 224); the adaptive pool
            # after it is the identity there and keeps the FC input 4x4x128 elsewhere
            self.pool = nn.Sequential(nn.AvgPool2d(5, stride=3), nn.AdaptiveAvgPool2d(4))
        else:
            self.pool = nn.AdaptiveAvgPool2d(4)
        self.conv = ConvNormAct(in_channels, 128, 1, norm=norm, norm_eps=norm_eps)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(128 * 4 * 4, AUX_HIDDEN)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = classifier(AUX_HIDDEN, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.conv(self.pool(x)))
        return self.fc2(self.drop(self.act(self.fc1(x))))


class GoogLeNet(ZooModel):
    """GoogLeNet built from a `GoogLeNetSpec` and the `INCEPTION` table.

    Modules: `stem` (conv1), `stages.0` (pool, LRN, conv2 1x1, conv3 3x3, LRN),
    `stages.1` (pool, 3a, 3b), `stages.2` (pool, 4a-4e), `stages.3` (pool, 5a, 5b), then
    `pool` -> `flatten` -> `drop` -> `fc`; `aux1`, `aux2` when `aux_logits`.
    """

    def __init__(
        self,
        spec: GoogLeNetSpec,
        num_classes: int = 1000,
        in_channels: int = 3,
        aux_logits: bool | None = None,
        dropout: float | None = None,
        aux_dropout: float = 0.7,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.aux_logits = spec.aux_default if aux_logits is None else bool(aux_logits)
        bn, eps = spec.batch_norm, spec.norm_eps

        def conv(cin: int, cout: int, k: int, stride: int = 1) -> ConvNormAct:
            return ConvNormAct(cin, cout, k, stride, norm=bn, norm_eps=eps)

        def pool(kernel: int = 3) -> nn.MaxPool2d:
            return nn.MaxPool2d(kernel, stride=2, ceil_mode=True)

        def inception(name: str, cin: int) -> InceptionBlock:
            n1, b3, b5, proj = INCEPTION[name]
            return InceptionBlock(cin, n1, b3, b5, proj, kernel5=spec.kernel5, norm=bn, norm_eps=eps)

        self.stem = nn.Sequential(OrderedDict(conv1=conv(in_channels, 64, 7, 2)))
        stage0: OrderedDict[str, nn.Module] = OrderedDict(pool=pool())
        # the LRN of Krizhevsky et al. 2012; the paper's Table 1 does not repeat the constants
        if spec.lrn:
            stage0["lrn1"] = LRN(**LRN_ARGS)
        stage0["conv2"] = conv(64, 64, 1)
        stage0["conv3"] = conv(64, 192, 3)
        if spec.lrn:
            stage0["lrn2"] = LRN(**LRN_ARGS)
        self.stages = nn.Sequential(nn.Sequential(stage0))
        # `_trunk` runs the stages' children one by one (the auxiliary heads tap 4a and 4d),
        # so each stage's output is named by its last module
        self.feature_info = [
            {"module": "stem", "channels": 64, "reduction": 2},
            {"module": f"stages.0.{next(reversed(stage0))}", "channels": 192, "reduction": 4},
        ]
        channels, reduction = 192, 4
        taps: dict[str, int] = {}
        for group in ("3", "4", "5"):
            stage = nn.Sequential()
            stage.add_module("pool", pool(spec.pool4_kernel if group == "5" else 3))
            reduction *= 2
            for name in (n for n in INCEPTION if n.startswith(group)):
                block = inception(name, channels)
                stage.add_module(f"inception{name}", block)
                channels = block.out_channels
                taps[f"inception{name}"] = channels
            last = f"stages.{len(self.stages)}.inception{name}"
            self.feature_info.append({"module": last, "channels": channels, "reduction": reduction})
            self.stages.add_module(str(len(self.stages)), stage)
        self.pool = nn.AdaptiveAvgPool2d(1)  # = the paper's 7x7/1 average pool at 224
        self.flatten = nn.Flatten()
        self.drop = nn.Dropout(spec.dropout if dropout is None else dropout)
        self.fc = classifier(channels, num_classes)
        self.num_features = self.head_hidden_size = channels
        if self.aux_logits:
            aux = {"paper_pool": spec.paper_aux_pool, "norm": bn, "norm_eps": eps, "dropout": aux_dropout}
            self.aux1 = AuxHead(taps[AUX_TAPS[0]], num_classes, **aux)
            self.aux2 = AuxHead(taps[AUX_TAPS[1]], num_classes, **aux)
            # `reset_classifier` (ZooModel's) replaces these too
            self.aux_classifiers = {"aux1.fc2": AUX_HIDDEN, "aux2.fc2": AUX_HIDDEN}
        else:
            self.aux1 = None
            self.aux2 = None
        self._init_weights()

    def _init_weights(self) -> None:
        if self._is_meta():  # nothing to initialise on the meta device
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if self.spec.torchvision:  # torchvision's GoogLeNet init (biases keep PyTorch's)
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                    continue
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The features, and the outputs of the modules the auxiliary heads sit on."""
        x = self.stem(x)
        taps: list[torch.Tensor] = []
        for stage in self.stages:
            for name, module in stage.named_children():
                x = module(x)
                # a static module name, not data: fine for torch.fx; spelled out because
                # TorchScript cannot test membership in a global tuple (AUX_TAPS)
                if name == "inception4a" or name == "inception4d":
                    taps.append(x)
        return x, taps

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x)[0]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.flatten(self.pool(x)))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, GoogLeNetOutput]:  # type: ignore[override]
        """Logits; in training mode with `aux_logits`, `GoogLeNetOutput(logits, aux1, aux2)`:
        aux1 is the head on (4a), aux2 the one on (4d). torchvision's GoogLeNet returns
        `(logits, aux_logits2, aux_logits1)` instead: unpack by name, not by position."""
        x, taps = self._trunk(x)
        logits = self.forward_head(x)
        if self.training and self.aux1 is not None and self.aux2 is not None:
            return GoogLeNetOutput(logits, self.aux1(taps[0]), self.aux2(taps[1]))
        return logits

    def convert_torchvision_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename torchvision's GoogLeNet keys to ours (rule by rule, see `_TV_RULES`).

        torchvision builds GoogLeNet with auxiliary heads by default; when this model has
        none, their keys are dropped (as torchvision does when it loads its own weights).
        """
        if not self.spec.torchvision:
            return super().convert_torchvision_state_dict(state_dict)
        renamed = {}
        for key, value in state_dict.items():
            if self.aux1 is None and key.startswith(("aux1.", "aux2.")):
                continue
            for pattern, repl in _TV_RULES:
                key = re.sub(pattern, repl, key)
            renamed[key] = value
        return renamed


#: torchvision name -> ours, applied in order
_TV_RULES: tuple[tuple[str, str], ...] = (
    (r"^conv1\.", "stem.conv1."),
    (r"^(conv[23])\.", r"stages.0.\1."),
    (r"^inception3", "stages.1.inception3"),
    (r"^inception4", "stages.2.inception4"),
    (r"^inception5", "stages.3.inception5"),
    (r"\.(branch[23])\.0\.", r".\1.reduce."),
    (r"\.(branch[23])\.1\.", r".\1.conv."),
    (r"\.branch4\.1\.", ".branch4.proj."),
    (r"\.bn\.", ".norm."),  # BasicConv2d(conv, bn) -> ConvNormAct(conv, norm, act)
)


#: registry name -> the numbers published for it, with their source
PUBLISHED: dict[str, Published] = {
    "googlenet_paper": Published(source="no exact total published (Table 1 gives per-layer params/ops rounded to K/M)"),
    "googlenet": Published(
        params=6_624_904,
        macs=1_498_000_000,
        source="torchvision GoogLeNet_Weights.IMAGENET1K_V1 meta (no aux heads): num_params, GFLOPS 1.498 (MACs, 3 decimals)",
    ),
}

register_specs(
    SPECS,
    model=GoogLeNet,
    family="googlenet",
    paper=PAPER,
    default_input=(3, 224, 224),
    min_input={"googlenet_paper": 79, "googlenet": 15},
    published=PUBLISHED,
    options=("aux_logits", "dropout", "aux_dropout"),
    description={
        "googlenet_paper": "Szegedy 2015 Table 1: true 5x5 branches, LRN stem, aux heads in training",
        "googlenet": "torchvision's batch-norm GoogLeNet: 3x3 in the '5x5' branch, no LRN, aux heads off",
    },
    doc=lambda name, spec: f"Build `{name}` (see `convzoo.models.googlenet`); `aux_logits` adds the auxiliary heads.",
)
