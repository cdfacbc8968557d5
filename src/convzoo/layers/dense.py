"""Dense layer, dense block and transition of DenseNet, with a memory-efficient option.

Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks", CVPR 2017
(sec. 3: composite function BN-ReLU-Conv, bottleneck layers, compression); Pleiss et al.,
"Memory-Efficient Implementation of DenseNets", arXiv 1707.06990 (recompute the
concatenation, BN, ReLU and 1x1 convolution in the backward pass instead of storing them).

Every module reports `out_channels`. Child names: `norm1, act1, conv1, norm2, act2, conv2`
in a dense layer, `layers.N` in a block, `norm, act, conv, pool` in a transition.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def _fx_tracing() -> bool:
    from torch.fx import _symbolic_trace as fx_trace

    # newer torch warns on is_fx_tracing (it is also true under torch.export)
    check = getattr(fx_trace, "is_fx_symbolic_tracing", None) or getattr(fx_trace, "is_fx_tracing", None)
    return bool(check()) if check is not None else False


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 (bottleneck, `bn_size * growth` maps) then BN-ReLU-Conv3x3 (`growth` maps).

    Takes the list of all earlier feature maps of its block and returns only its own
    `growth` new maps (`out_channels == growth`). With `memory_efficient=True` the
    concatenation, first BN, ReLU and 1x1 conv are recomputed in backward
    (`torch.utils.checkpoint`, non-reentrant); outputs and gradients are unchanged, and the
    BN running statistics are updated once per forward, not again on recomputation.
    """

    def __init__(self, in_channels: int, growth: int, bn_size: int = 4, memory_efficient: bool = False) -> None:
        super().__init__()
        width = bn_size * growth
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.act1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(width, growth, 3, padding=1, bias=False)
        self.memory_efficient = memory_efficient
        self.in_channels = in_channels
        self.out_channels = growth

    def bottleneck(self, features: List[Tensor]) -> Tensor:
        """cat -> BN -> ReLU -> 1x1 conv: the part that memory-efficient mode recomputes."""
        return self.conv1(self.act1(self.norm1(torch.cat(features, 1))))

    def forward(self, features: List[Tensor]) -> Tensor:
        if torch.jit.is_scripting():
            out = self.bottleneck(features)
        elif self.memory_efficient and torch.is_grad_enabled() and not _fx_tracing():
            out = self._checkpointed_bottleneck(features)
        else:
            out = self.bottleneck(features)
        return self.conv2(self.act2(self.norm2(out)))

    def _bottleneck_of(self, *inputs: Tensor) -> Tensor:
        return self.conv1(self.act1(self.norm1(torch.cat(inputs, 1))))

    @torch.jit.unused
    def _checkpointed_bottleneck(self, features: List[Tensor]) -> Tensor:
        if _compiling():
            # under torch.compile the recomputation is planned by the compiler from the
            # traced graph (Python does not run again), so the running statistics are
            # updated once; the counter below would be a side effect dynamo cannot
            # capture with fullgraph=True
            return checkpoint(self._bottleneck_of, *features, use_reentrant=False)
        calls = [0]
        norm = self.norm1

        def run(*inputs: Tensor) -> Tensor:
            calls[0] += 1
            x = torch.cat(inputs, 1)
            if calls[0] == 1 or not norm.training:
                x = norm(x)
            else:
                # recomputation in backward: batch statistics give the same output; updating
                # throw-away copies keeps the real running statistics as without
                # checkpointing, and saves the same tensors as the first pass (which the
                # non-reentrant checkpoint checks)
                mean = norm.running_mean.clone() if norm.running_mean is not None else None
                var = norm.running_var.clone() if norm.running_var is not None else None
                x = F.batch_norm(x, mean, var, norm.weight, norm.bias, True, 0.1, norm.eps)
            return self.conv1(self.act1(x))

        return checkpoint(run, *features, use_reentrant=False)


class DenseBlock(nn.Module):
    """`num_layers` dense layers, each seeing the concatenation of all earlier maps.

    `out_channels = in_channels + num_layers * growth`.
    """

    def __init__(
        self, num_layers: int, in_channels: int, growth: int, bn_size: int = 4, memory_efficient: bool = False
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth, growth, bn_size, memory_efficient) for i in range(num_layers)
        )
        self.in_channels = in_channels
        self.out_channels = in_channels + num_layers * growth

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 to `out_channels`, then 2x2 average pooling, stride 2 (sec. 3)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.act = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)
        self.in_channels = in_channels
        self.out_channels = out_channels
