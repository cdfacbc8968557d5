"""The Inception module of GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", 2015).

Four parallel branches whose outputs are concatenated along the channels (Figure 2b):

- `branch1`: 1x1 convolution
- `branch2`: 1x1 reduction, then 3x3 convolution
- `branch3`: 1x1 reduction, then 5x5 convolution (torchvision's GoogLeNet uses 3x3 here;
  pass `kernel5=3` to reproduce it)
- `branch4`: 3x3 max-pool (stride 1), then 1x1 projection

The reduce/expand widths are given as `(reduce, out)` tuples, the way the paper's Table 1
groups "#3x3 reduce, #3x3" and "#5x5 reduce, #5x5".
"""

from __future__ import annotations

import torch
from torch import nn

from .conv import ConvNormAct


class InceptionBlock(nn.Module):
    """One Inception module.

    Args:
        in_channels: channels of the input.
        conv1x1: width of the 1x1 branch.
        conv3x3: `(reduce, out)` of the 3x3 branch.
        conv5x5: `(reduce, out)` of the "5x5" branch.
        pool_proj: width of the 1x1 projection after the max-pool.
        kernel5: kernel of the "5x5" branch (5 in the paper, 3 in torchvision).
        norm: batch norm after every convolution (the BN variant; the paper has none).
        norm_eps: the batch norm's epsilon.
    """

    def __init__(
        self,
        in_channels: int,
        conv1x1: int,
        conv3x3: tuple[int, int],
        conv5x5: tuple[int, int],
        pool_proj: int,
        *,
        kernel5: int = 5,
        norm: bool = False,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()

        def cna(cin: int, cout: int, k: int) -> ConvNormAct:
            return ConvNormAct(cin, cout, k, norm=norm, norm_eps=norm_eps)

        self.branch1 = cna(in_channels, conv1x1, 1)
        self.branch2 = nn.Sequential()
        self.branch2.add_module("reduce", cna(in_channels, conv3x3[0], 1))
        self.branch2.add_module("conv", cna(conv3x3[0], conv3x3[1], 3))
        self.branch3 = nn.Sequential()
        self.branch3.add_module("reduce", cna(in_channels, conv5x5[0], 1))
        self.branch3.add_module("conv", cna(conv5x5[0], conv5x5[1], kernel5))
        self.branch4 = nn.Sequential()
        # ceil_mode as in Caffe (and torchvision); with stride 1 and padding 1 it changes nothing
        self.branch4.add_module("pool", nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True))
        self.branch4.add_module("proj", cna(in_channels, pool_proj, 1))
        self.in_channels = in_channels
        self.out_channels = conv1x1 + conv3x3[1] + conv5x5[1] + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)
