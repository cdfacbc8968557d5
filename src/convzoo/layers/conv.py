"""Convolution followed by optional normalisation and activation, with fixed child names."""

from __future__ import annotations

from typing import Callable

from torch import nn

ActFactory = Callable[[], nn.Module]


class ConvNormAct(nn.Sequential):
    """`conv` -> `norm` (optional) -> `act` (optional).

    Padding defaults to "same" for odd kernels at stride 1 (k // 2). The convolution has
    a bias only when there is no normalisation after it, unless `bias` says otherwise.
    `norm_eps` is the batch norm's epsilon (torchvision's GoogLeNet uses 1e-3).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | None = None,
        *,
        groups: int = 1,
        bias: bool | None = None,
        norm: bool = False,
        norm_eps: float = 1e-5,
        act: ActFactory | None = nn.ReLU,
    ) -> None:
        if padding is None:
            padding = kernel_size // 2
        if bias is None:
            bias = not norm
        layers: dict[str, nn.Module] = {
            "conv": nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        }
        if norm:
            layers["norm"] = nn.BatchNorm2d(out_channels, eps=norm_eps)
        if act is not None:
            layers["act"] = act()
        super().__init__()
        for name, module in layers.items():
            self.add_module(name, module)
        self.in_channels = in_channels
        self.out_channels = out_channels
