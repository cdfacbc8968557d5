"""LeNet-5.

LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document Recognition",
Proc. IEEE, 1998.

`lenet5` is the lecture's network, `6c5w1s0p 2w2s 16c5w1s0p 2w2s 400 -> 120fc -> 84fc ->
10fc` on a 1x32x32 input, with ReLU and max-pooling as the lecture writes it (61,706
parameters). Deviations from the 1998 paper (all the lecture's): full C3 connections
instead of the partial table, max-pooling instead of trainable subsampling, ReLU instead of
the scaled tanh, a 10-way linear layer instead of the Euclidean RBF output.
"""

from __future__ import annotations

from torch import nn

from ..registry import ModelInfo, register_model
from .base import ZooModel

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
        self.fc = nn.Linear(84, num_classes)
        self.feature_info = [
            {"module": "stages.0", "channels": 6, "reduction": 2},
            {"module": "stages.1", "channels": 16, "reduction": 4},
        ]

    def forward_features(self, x):
        return self.stages(x)

    def forward_head(self, x, pre_logits: bool = False):
        x = self.pre_logits(self.flatten(x))
        return x if pre_logits else self.fc(x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.fc.in_features, num_classes)


register_model(
    ModelInfo(
        name="lenet5",
        family="lenet",
        builder=LeNet5,
        paper=PAPER,
        default_input=(1, 32, 32),
        min_input=32,
        num_classes=10,
        params=61_706,
        macs=416_520,
        source="lecture notes (LeNet slide); MACs hand-derived: 117,600 + 240,000 + 48,000 + 10,080 + 840",
        description="the lecture's LeNet-5: ReLU, max-pooling, full C3",
    )
)
