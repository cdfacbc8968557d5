"""LeNet-5.

LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document Recognition",
Proc. IEEE, 1998.

`lenet5` is the lecture's network, `6c5w1s0p 2w2s 16c5w1s0p 2w2s 400 -> 120fc -> 84fc ->
10fc` on a 1x32x32 input, with ReLU and max-pooling as the lecture writes it (61,706
parameters). Deviations from the 1998 paper (all the lecture's): full C3 connections
instead of the partial table, max-pooling instead of trainable subsampling, ReLU instead of
the scaled tanh, a 10-way linear layer instead of the Euclidean RBF output.

`lenet5_paper` is the 1998 network itself: squashing f(a) = 1.7159 tanh(2a/3) after every
layer up to F6, S2/S4 subsampling (sum of a 2x2 window times a trainable coefficient plus a
trainable bias, per map), C3 wired by the paper's Table I (1,516 parameters instead of
2,416), C5 a 5x5 convolution to 120 maps, F6 84 units, and the paper's uniform
(-2.4/F, 2.4/F) initialisation. One simplification: the output is a trainable 84->10 linear
layer (logits for cross-entropy) instead of the ten Euclidean RBF units with hand-designed,
fixed 7x12 bitmap centres and the paper's MAP loss.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import ZooModel, classifier
from .family import Published, register_specs

PAPER = "LeCun et al., Gradient-Based Learning Applied to Document Recognition, Proc. IEEE 1998"


class LeNet5(ZooModel):
    """The lecture's LeNet-5: two conv/pool stages, then 120-84-classes fully connected."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.stages = nn.Sequential(
            nn.Sequential(nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2)),
            nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2)),
        )
        self.flatten = nn.Flatten()
        self.pre_logits = nn.Sequential(nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.fc = classifier(84, num_classes)
        self.num_features, self.head_hidden_size = 16, 84
        self.feature_info = [
            {"module": "stages.0", "channels": 6, "reduction": 2},
            {"module": "stages.1", "channels": 16, "reduction": 4},
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(self.flatten(x))
        return x if pre_logits else self.fc(x)


# -- LeNet-5 as LeCun et al. (1998) built it ----------------------------------------------
#
# Table I of the paper: which S2 maps (rows) each C3 map (columns) sees. Maps 0-5 take
# three contiguous S2 maps, 6-11 four contiguous, 12-14 four non-contiguous, 15 all six.
C3_TABLE = (
    "X...XXX..XXXX.XX",
    "XX...XXX..XXXX.X",
    "XXX...XXX..X.XXX",
    ".XXX..XXXX..X.XX",
    "..XXX..XXXX.XX.X",
    "...XXX..XXXX.XXX",
)


class ScaledTanh(nn.Module):
    """The paper's squashing function f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A)."""

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


class Subsampling(nn.Module):
    """S2/S4: the sum of each non-overlapping 2x2 window, times a trainable coefficient, plus
    a trainable bias, one pair per map (2 parameters per map)."""

    def __init__(self, channels: int, window: int = 2) -> None:
        super().__init__()
        self.window = window
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summed = F.avg_pool2d(x, self.window) * (self.window * self.window)
        return summed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, window={self.window}"


class PartialConv2d(nn.Module):
    """A convolution whose output maps see only the input maps a connection table allows.

    Only the allowed kernels are parameters (`weight` holds them packed, one 5x5 kernel per
    X of the table), so the count is the paper's: C3 has 1,500 weights + 16 biases = 1,516.
    The full (out, in, k, k) kernel is assembled with zeros in each forward pass.
    """

    def __init__(self, table: tuple[str, ...], kernel_size: int) -> None:
        super().__init__()
        in_maps, out_maps = len(table), len(table[0])
        pairs = [o * in_maps + i for o in range(out_maps) for i in range(in_maps) if table[i][o] == "X"]
        self.in_channels = in_maps
        self.out_channels = out_maps
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(len(pairs), kernel_size * kernel_size))
        self.bias = nn.Parameter(torch.empty(out_maps))
        # persistent, so a model built on the meta device and then loaded gets it back
        self.register_buffer("index", torch.tensor(pairs, dtype=torch.long))
        # fan-in of each output map, for the paper's initialisation
        self.fan_in = [sum(row[o] == "X" for row in table) * kernel_size * kernel_size for o in range(out_maps)]

    def full_weight(self) -> torch.Tensor:
        """The (out, in, k, k) kernel with zeros where the table has no connection."""
        k = self.kernel_size
        full = self.weight.new_zeros(self.out_channels * self.in_channels, k * k)
        full = full.index_copy(0, self.index, self.weight)
        return full.view(self.out_channels, self.in_channels, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.full_weight(), self.bias)

    def extra_repr(self) -> str:
        k = self.kernel_size
        return f"{self.in_channels}, {self.out_channels}, kernel_size=({k}, {k}), connections={self.weight.shape[0]}"


class LeNet5Paper(ZooModel):
    """LeNet-5 of the 1998 paper: C1-S2-C3-S4-C5-F6 with scaled-tanh squashing after every
    layer, trainable subsampling, C3's partial connections, and a linear output layer in
    place of the Euclidean RBF units (the one simplification)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.stages = nn.Sequential(
            nn.Sequential(
                OrderedDict(
                    c1=nn.Conv2d(in_channels, 6, 5), act1=ScaledTanh(), s2=Subsampling(6), act2=ScaledTanh()
                )
            ),
            nn.Sequential(
                OrderedDict(c3=PartialConv2d(C3_TABLE, 5), act3=ScaledTanh(), s4=Subsampling(16), act4=ScaledTanh())
            ),
        )
        self.pre_logits = nn.Sequential(
            OrderedDict(
                c5=nn.Conv2d(16, 120, 5), act5=ScaledTanh(), flatten=nn.Flatten(), f6=nn.Linear(120, 84), act6=ScaledTanh()
            )
        )
        self.fc = classifier(84, num_classes)
        self.num_features, self.head_hidden_size = 16, 84
        self.feature_info = [
            {"module": "stages.0", "channels": 6, "reduction": 2},
            {"module": "stages.1", "channels": 16, "reduction": 4},
        ]
        self._init_weights()

    def _init_weights(self) -> None:
        # Appendix C: weights uniform in (-2.4/F, 2.4/F), F the fan-in of the unit.
        if self._is_meta():  # nothing to initialise on the meta device
            return
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                nn.init.uniform_(m.weight, -2.4 / fan_in, 2.4 / fan_in)
                nn.init.uniform_(m.bias, -2.4 / fan_in, 2.4 / fan_in)
            elif isinstance(m, PartialConv2d):
                with torch.no_grad():
                    bound = torch.tensor([2.4 / f for f in m.fan_in], device=m.weight.device)
                    rows = bound[m.index // m.in_channels].unsqueeze(1)
                    m.weight.uniform_(-1.0, 1.0).mul_(rows)
                    m.bias.uniform_(-1.0, 1.0).mul_(bound)
            elif isinstance(m, Subsampling):
                # a subsampling unit has 4 inputs
                nn.init.uniform_(m.weight, -0.6, 0.6)
                nn.init.uniform_(m.bias, -0.6, 0.6)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_logits(x)
        return x if pre_logits else self.fc(x)


#: The two LeNets, keyed by registry name: the lecture's network and the 1998 paper's.
#: A LeNet's spec is its class (the two differ in every layer, not in a few options).
SPECS: dict[str, type[ZooModel]] = {
    "lenet5": LeNet5,
    "lenet5_paper": LeNet5Paper,
}

#: multiply-adds of `lenet5` at 1x32x32, layer by layer (C1, C3, C5, F6, output), by hand
LECTURE_MACS = (117_600, 240_000, 48_000, 10_080, 840)
#: parameters of the 1998 network, layer by layer (paper section II-B); F6's 84 units end there
PAPER_LAYER_PARAMS: dict[str, int] = {"C1": 156, "S2": 12, "C3": 1_516, "S4": 32, "C5": 48_120, "F6": 10_164}
#: the 84->10 linear output that replaces the paper's RBF layer
LINEAR_OUTPUT_PARAMS = 84 * 10 + 10

PUBLISHED: dict[str, Published] = {
    "lenet5": Published(
        params=61_706,
        macs=sum(LECTURE_MACS),
        source="lecture notes (LeNet slide); MACs hand-derived: " + " + ".join(f"{m:,}" for m in LECTURE_MACS),
    ),
    "lenet5_paper": Published(
        params=sum(PAPER_LAYER_PARAMS.values()) + LINEAR_OUTPUT_PARAMS,
        source=(
            "paper section II-B per layer: "
            + ", ".join(f"{layer} {n:,}" for layer, n in PAPER_LAYER_PARAMS.items())
            + f" ({sum(PAPER_LAYER_PARAMS.values()):,}), plus {LINEAR_OUTPUT_PARAMS:,} for the 84->10 linear output "
            "that replaces the RBF layer"
        ),
    ),
}

DESCRIPTIONS = {
    "lenet5": "the lecture's LeNet-5: ReLU, max-pooling, full C3",
    "lenet5_paper": "LeCun 1998: scaled tanh, trainable subsampling, C3 partial table, linear output",
}


def _build(cls: type[ZooModel], **kwargs: Any) -> ZooModel:
    return cls(**kwargs)


register_specs(
    SPECS,
    model=_build,
    label="LeNet",
    family="lenet",
    paper=PAPER,
    default_input=(1, 32, 32),
    min_input=32,
    num_classes=10,
    published=PUBLISHED,
    description=DESCRIPTIONS,
    doc=lambda name, cls: f"Build `{name}` ({cls.__name__}; see `convzoo.models.lenet`).",
)
