"""Shape and parameter walk of a `NetworkSpec`, in plain integer arithmetic.

Runs before anything is built, so that a window larger than its input, a wrong declared
flatten size, an fc before the flatten, or an absurd size (a billion filters) is refused
with the position in the text, before any module or memory exists. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import ConfigError, NotationError
from .spec import (
    FC,
    LRN,
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
    last_fc_index,
)

#: Input channels when neither the text (`Input(C...)`) nor the caller says: the lecture's
#: LeNet reads 1x32x32 grey images.
DEFAULT_IN_CHANNELS = 1

Shape = tuple  # (C, H, W) with H, W None when unknown, or (N,) with N None when unknown


@dataclass(frozen=True)
class LayerShape:
    """One layer of the walk: its input and output shapes (no batch axis) and parameters."""

    layer: Layer
    input_shape: Shape
    output_shape: Shape
    params: int


def format_shape(shape: Shape) -> str:
    """`16x5x5`, `400`, or `16x?x?` where the spatial size is not known."""
    return "x".join("?" if d is None else str(d) for d in shape)


def resolve_input(
    spec: NetworkSpec,
    in_channels: int | None = None,
    input_size: int | Sequence[int] | None = None,
) -> tuple[int, tuple[int, int] | None]:
    """(channels, (H, W) or None): the arguments first, then the `Input` tag, then defaults.

    `input_size` is (C, H, W), (H, W) or one side.
    """
    hw: tuple[int, int] | None = spec.input_hw
    channels = spec.in_channels
    if input_size is not None:
        size = (input_size,) * 2 if isinstance(input_size, int) else tuple(int(v) for v in input_size)
        if len(size) == 3:
            if in_channels is not None and in_channels != size[0]:
                raise ConfigError(f"in_channels={in_channels} contradicts input_size={size} (C, H, W)")
            channels, size = size[0], size[1:]
        if len(size) != 2:
            raise ConfigError(f"input_size must be (C, H, W), (H, W) or one side, got {input_size!r}")
        hw = (size[0], size[1])
    if in_channels is not None:
        channels = int(in_channels)
    if channels is None:
        channels = DEFAULT_IN_CHANNELS
    if not 1 <= channels <= MAX_WIDTH:
        raise ConfigError(f"input channels must be in [1, {MAX_WIDTH:,}], got {channels}")
    if hw is not None and not all(1 <= side <= MAX_SIDE for side in hw):
        raise ConfigError(f"input height and width must be in [1, {MAX_SIDE:,}], got {hw[0]}x{hw[1]}")
    return channels, hw


def _window(size: int | None, kernel: int, stride: int, padding: int) -> int | None:
    if size is None:
        return None
    return (size + 2 * padding - kernel) // stride + 1


def check(
    spec: NetworkSpec,
    *,
    in_channels: int | None = None,
    input_size: int | Sequence[int] | None = None,
    text: str = "",
) -> list[LayerShape]:
    """Walk `spec` layer by layer; return shapes and parameter counts or raise `NotationError`.

    `text` is the notation `spec` was parsed from, for the caret in error messages. Without
    a spatial input size the windows cannot be checked and flatten sizes come from `(Flat)N`.
    """
    channels, hw = resolve_input(spec, in_channels, input_size)
    shape: Shape = (channels, *(hw if hw is not None else (None, None)))
    rows: list[LayerShape] = []
    total = 0

    def fail(message: str, layer: Layer) -> NotationError:
        return NotationError(message, text, layer.pos if text else None)

    last = last_fc_index(spec.layers)
    for index, layer in enumerate(spec.layers):
        name = f"'{format_layer(layer, last_fc=index == last)}'"
        params = 0
        flat = len(shape) == 1
        if isinstance(layer, (Conv, Pool, LRN, AdaptiveAvgPool)) and flat:
            raise fail(f"{name} needs a feature map, but its input is already flat ({format_shape(shape)} values)", layer)
        if isinstance(layer, (Conv, Pool)):
            c, h, w = shape
            if isinstance(layer, Conv) and c % layer.groups:
                raise fail(f"{name}: {layer.groups} groups must divide its {c} input channels", layer)
            k, p = layer.kernel, layer.padding
            if h is not None and (h + 2 * p < k or w + 2 * p < k):
                raise fail(
                    f"window larger than its input: {name} has a {k}x{k} window (padding {p}) "
                    f"but its input is {format_shape(shape)}",
                    layer,
                )
            oh, ow = _window(h, k, layer.stride, p), _window(w, k, layer.stride, p)
            if isinstance(layer, Conv):
                out = layer.out_channels
                params = out * (c // layer.groups) * k * k + (out if layer.bias else 0) + (2 * out if layer.bn else 0)
                shape = (out, oh, ow)
            else:
                shape = (c, oh, ow)
        elif isinstance(layer, AdaptiveAvgPool):
            shape = (shape[0], layer.height, layer.width)
        elif isinstance(layer, Flatten):
            if flat:
                size = shape[0]
            else:
                c, h, w = shape
                size = None if h is None else c * h * w
            if layer.declared is not None:
                if size is not None and size != layer.declared:
                    raise fail(
                        f"{name} declares {layer.declared} values, but its input {format_shape(shape)} "
                        f"flattens to {size}",
                        layer,
                    )
                size = layer.declared
            shape = (size,)
        elif isinstance(layer, FC):
            if not flat:
                raise fail(
                    f"fc before flatten: {name} receives a {format_shape(shape)} feature map; "
                    "write (Flat) before it",
                    layer,
                )
            if shape[0] is None:
                raise fail(
                    f"cannot infer the input size of {name}: give the input size (Input(CxHxW), "
                    "input_size=, --input) or declare it with (Flat)N",
                    layer,
                )
            out = layer.out_features
            params = shape[0] * out + (out if layer.bias else 0) + (2 * out if layer.bn else 0)
            shape = (out,)
        elif isinstance(layer, BatchNorm):
            if shape[0] is None:
                raise fail(f"cannot infer the size of {name}: declare it with (Flat)N or give the input size", layer)
            params = 2 * shape[0]
        elif not isinstance(layer, (LRN, Dropout, Activation)):  # pragma: no cover - all kinds above
            raise TypeError(f"not a layer spec: {layer!r}")
        total += params
        if total > MAX_PARAMS:
            raise fail(
                f"the network would have more than {MAX_PARAMS:,} parameters ({name} alone has {params:,}); "
                "refused before allocating anything",
                layer,
            )
        input_shape = rows[-1].output_shape if rows else (channels, *(hw if hw is not None else (None, None)))
        rows.append(LayerShape(layer, input_shape, shape, params))
    return rows
