"""The lecture's compact notation: build, print and check networks from one line.

    6c5w1s0p 2w2s 16c5w1s0p 2w2s
    Input->(Conv)6c5w1s0p->(MaxPool)2w2s->(Conv)16c5w1s0p->(MaxPool)2w2s->(Flat)400->120fc->84fc->10fc->(Output)

- `parse(text) -> NetworkSpec` (syntax; pure Python)
- `check(spec, input_size=...) -> [LayerShape]` (shapes and parameters; pure Python)
- `from_spec(text, in_channels=, input_size=) -> SpecNet` (an `nn.Module`)
- `to_spec(module) -> str` (any sequential network: LeNet, AlexNet, VGG)

The grammar is in docs/notation.md. Parsing and checking do not import torch; building
and printing do, when first called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .grammar import parse, tokenize
from .shapes import DEFAULT_IN_CHANNELS, LayerShape, check, format_shape, resolve_input
from .spec import (
    FC,
    LRN,
    MAX_LAYERS,
    MAX_PARAMS,
    MAX_SIDE,
    MAX_WIDTH,
    Activation,
    AdaptiveAvgPool,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    Layer,
    NetworkSpec,
    Pool,
    format_layer,
    format_spec,
)

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from .builder import SpecNet

__all__ = [
    "DEFAULT_IN_CHANNELS",
    "FC",
    "LRN",
    "MAX_LAYERS",
    "MAX_PARAMS",
    "MAX_SIDE",
    "MAX_WIDTH",
    "Activation",
    "AdaptiveAvgPool",
    "BatchNorm",
    "Conv",
    "Dropout",
    "Flatten",
    "Layer",
    "LayerShape",
    "NetworkSpec",
    "Pool",
    "check",
    "format_layer",
    "format_shape",
    "format_spec",
    "from_spec",
    "parse",
    "resolve_input",
    "to_spec",
    "tokenize",
]


def from_spec(
    text: str | NetworkSpec,
    *,
    in_channels: int | None = None,
    input_size: int | Sequence[int] | None = None,
) -> "SpecNet":
    """Build the network written in the compact notation.

    The input comes from the arguments, else from the text's `Input(CxHxW)` tag; channels
    default to 1 (the lecture's 1x32x32 LeNet). Without a spatial size, windows are not
    checked and the first fc reads its size from `(Flat)N`. `input_size` is (C, H, W),
    (H, W) or one side. Raises `NotationError` (with a caret under the fault) for malformed
    or impossible text, before any module is created.
    """
    spec = text if isinstance(text, NetworkSpec) else parse(text)
    from .builder import build

    return build(spec, in_channels=in_channels, input_size=input_size, text=text if isinstance(text, str) else "")


def to_spec(module: "nn.Module", *, input_size: Sequence[int] | None = None, form: str = "chain") -> str:
    """The compact notation of a sequential module; see `convzoo.notation.printer.to_spec`."""
    from .printer import to_spec as _to_spec

    return _to_spec(module, input_size=input_size, form=form)
