"""Build a module from a checked `NetworkSpec`: `SpecNet`, a sequence with clean names.

Each layer of the text is one child: `conv1` (a `ConvNormAct`: `conv`, `norm`, `act`),
`pool1`, `flatten`, `fc1` (`linear`, `norm`, `act`), `lrn`, `drop1`... Kinds that occur
once are not numbered, except conv, pool and fc, which are numbered as in the lecture.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from torch import nn

from ..layers import LRN as LRNLayer
from ..layers import ConvNormAct
from .shapes import check, resolve_input
from .spec import (
    FC,
    LRN,
    Activation,
    AdaptiveAvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    Layer,
    NetworkSpec,
    Pool,
    layer_labels,
)

_ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_ALWAYS_NUMBERED = ("conv", "pool", "fc")


class LinearNormAct(nn.Sequential):
    """`linear` -> `norm` (optional BatchNorm1d) -> `act` (optional), with fixed child names."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, norm: bool = False, act: str | None = "relu") -> None:
        super().__init__()
        self.add_module("linear", nn.Linear(in_features, out_features, bias=bias))
        if norm:
            self.add_module("norm", nn.BatchNorm1d(out_features))
        if act is not None:
            self.add_module("act", _ACT[act]())


class SpecNet(nn.Sequential):
    """A network built from the compact notation.

    Attributes: `spec` (the `NetworkSpec`), `in_channels`, `input_size` ((C, H, W) or None
    when no spatial size was given), `num_classes` (units of the last fc, or None) and
    `layer_names` (the child name of each layer of `spec`, in order).
    """

    def __init__(self, spec: NetworkSpec, modules: list[tuple[str, nn.Module]], in_channels: int, input_size: tuple[int, int, int] | None) -> None:
        super().__init__()
        for name, module in modules:
            self.add_module(name, module)
        self.spec = spec
        self.in_channels = in_channels
        self.input_size = input_size
        self.layer_names = [name for name, _ in modules]
        fcs = [layer for layer in spec.layers if isinstance(layer, FC)]
        self.num_classes = fcs[-1].out_features if fcs else None


def build(
    spec: NetworkSpec,
    *,
    in_channels: int | None = None,
    input_size: int | Sequence[int] | None = None,
    text: str = "",
) -> SpecNet:
    """Check `spec` (see `check`) and build it. Layers are created on the current default
    device, so `with torch.device("meta"):` builds without allocating weights."""
    rows = check(spec, in_channels=in_channels, input_size=input_size, text=text)
    channels, hw = resolve_input(spec, in_channels, input_size)
    kinds = [layer_labels(layer)[0] for layer in spec.layers]
    totals = Counter(kinds)
    seen: Counter[str] = Counter()
    modules: list[tuple[str, nn.Module]] = []
    for layer, row, kind in zip(spec.layers, rows, kinds):
        seen[kind] += 1
        name = f"{kind}{seen[kind]}" if kind in _ALWAYS_NUMBERED or totals[kind] > 1 else kind
        modules.append((name, _module(layer, row.input_shape)))
    size = (channels, *hw) if hw is not None else None
    return SpecNet(spec, modules, channels, size)  # type: ignore[arg-type]


def _module(layer: Layer, in_shape: tuple) -> nn.Module:
    if isinstance(layer, Conv):
        act = _ACT[layer.act] if layer.act else None
        return ConvNormAct(
            in_shape[0],
            layer.out_channels,
            layer.kernel,
            layer.stride,
            layer.padding,
            groups=layer.groups,
            bias=layer.bias,
            norm=layer.bn,
            act=act,
        )
    if isinstance(layer, Pool):
        cls = nn.MaxPool2d if layer.kind == "max" else nn.AvgPool2d
        return cls(layer.kernel, layer.stride, layer.padding)
    if isinstance(layer, FC):
        return LinearNormAct(in_shape[0], layer.out_features, bias=layer.bias, norm=layer.bn, act=layer.act)
    if isinstance(layer, Flatten):
        return nn.Flatten()
    if isinstance(layer, LRN):
        return LRNLayer(layer.size, alpha=layer.alpha, beta=layer.beta, k=layer.k)
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, BatchNorm):
        return nn.BatchNorm2d(in_shape[0]) if len(in_shape) == 3 else nn.BatchNorm1d(in_shape[0])
    if isinstance(layer, Activation):
        return _ACT[layer.kind]()
    if isinstance(layer, AdaptiveAvgPool):
        return nn.AdaptiveAvgPool2d((layer.height, layer.width))
    raise TypeError(f"not a layer spec: {layer!r}")  # pragma: no cover
