"""The parsed form of the compact notation: one frozen dataclass per layer, and its text.

A `NetworkSpec` is what `parse` returns and what `format_spec` prints. Two specs compare
equal when they describe the same network; the position of a layer in the text it came
from (`pos`) is kept for error messages only and takes no part in the comparison.

Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

#: Activation names a conv or fc layer may carry (None: no activation).
ACTIVATIONS = ("relu", "tanh", "sigmoid")

# Refuse absurd sizes before any module or memory exists (issue 3: "a billion filters").
#: Largest number of channels, features or units of one layer.
MAX_WIDTH = 2**20
#: Largest window, stride, padding or input side.
MAX_SIDE = 2**16
#: Largest number of layers of a network (repeat counts included).
MAX_LAYERS = 10_000
#: Largest parameter count of a whole network (2^31, about 8.6 GB of float32 weights).
MAX_PARAMS = 2**31

#: AlexNet's LRN constants (Krizhevsky et al. 2012, section 3.3), the defaults of `(LRN)`.
LRN_DEFAULTS = (5, 2.0, 1e-4, 0.75)


def _pos() -> int | None:
    return field(default=None, compare=False, repr=False)  # type: ignore[return-value]


@dataclass(frozen=True)
class Conv:
    """`{C}c{K}w{S}s{P}p{G}g`: C filters of K x K, stride S, padding P, G groups.

    `bn` puts a batch norm between the convolution and its activation; `bias` defaults to
    `not bn` (the norm's shift makes a bias redundant, Ioffe and Szegedy 2015, section 3.2).
    """

    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    bn: bool = False
    bias: bool = True
    act: str | None = "relu"
    pos: int | None = _pos()


@dataclass(frozen=True)
class Pool:
    """`{K}w{S}s{P}p`: max (`kind="max"`, the default) or average pooling."""

    kind: str
    kernel: int
    stride: int = 1
    padding: int = 0
    pos: int | None = _pos()


@dataclass(frozen=True)
class FC:
    """`{N}fc`: a fully connected layer of N units (ReLU, except the last fc: none)."""

    out_features: int
    bn: bool = False
    bias: bool = True
    act: str | None = "relu"
    pos: int | None = _pos()


@dataclass(frozen=True)
class Flatten:
    """`(Flat)` or `(Flat)N`: flatten to a vector; N, when given, is checked."""

    declared: int | None = None
    pos: int | None = _pos()


@dataclass(frozen=True)
class LRN:
    """`(LRN){n}n{k}k{alpha}a{beta}b`: the lecture's local response normalisation."""

    size: int = LRN_DEFAULTS[0]
    k: float = LRN_DEFAULTS[1]
    alpha: float = LRN_DEFAULTS[2]
    beta: float = LRN_DEFAULTS[3]
    pos: int | None = _pos()


@dataclass(frozen=True)
class Dropout:
    """`(Dropout)P`: dropout with rate P (0.5 when omitted)."""

    p: float = 0.5
    pos: int | None = _pos()


@dataclass(frozen=True)
class BatchNorm:
    """`(BN)`: a batch norm on its own (2-d on maps, 1-d on vectors)."""

    pos: int | None = _pos()


@dataclass(frozen=True)
class Activation:
    """`(ReLU)`, `(Tanh)`, `(Sigmoid)`: an activation on its own."""

    kind: str
    pos: int | None = _pos()


@dataclass(frozen=True)
class AdaptiveAvgPool:
    """`(AdaptiveAvgPool)HxW`, and `(GAP)` for 1x1 (global average pooling)."""

    height: int
    width: int
    pos: int | None = _pos()


Layer = Union[Conv, Pool, FC, Flatten, LRN, Dropout, BatchNorm, Activation, AdaptiveAvgPool]


#: Each layer class -> (child-name stem, short type name), the one table of the layers'
#: names: the builder names modules `conv1`, `pool2`, `lrn`...; `convzoo spec` shows the type.
_NAMES: dict[type, Callable[[Any], tuple[str, str]]] = {
    Conv: lambda layer: ("conv", "Conv"),
    Pool: lambda layer: ("pool", "MaxPool" if layer.kind == "max" else "AvgPool"),
    FC: lambda layer: ("fc", "FC"),
    Flatten: lambda layer: ("flatten", "Flat"),
    LRN: lambda layer: ("lrn", "LRN"),
    Dropout: lambda layer: ("drop", "Dropout"),
    BatchNorm: lambda layer: ("bn", "BN"),
    Activation: lambda layer: (layer.kind, {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}[layer.kind]),
    AdaptiveAvgPool: lambda layer: (
        ("gap", "GAP") if (layer.height, layer.width) == (1, 1) else ("avgpool", "AdaptiveAvgPool")
    ),
}


def layer_labels(layer: Layer) -> tuple[str, str]:
    """(child-name stem, short type name) of a layer: `("conv", "Conv")`, `("pool", "MaxPool")`,
    `("gap", "GAP")`, `("relu", "ReLU")`..."""
    names = _NAMES.get(type(layer))
    if names is None:
        raise TypeError(f"not a layer spec: {layer!r}")
    return names(layer)


@dataclass(frozen=True)
class NetworkSpec:
    """A network in the notation: its layers and what the `Input` tag said.

    `in_channels` and `input_hw` are None when the text did not give them.
    """

    layers: tuple[Layer, ...]
    in_channels: int | None = None
    input_hw: tuple[int, int] | None = None


# -- printing ------------------------------------------------------------------------------


def format_number(value: float) -> str:
    """The shortest text that reads back as exactly `value` (`2.0` -> `2`, `1e-4` -> `1e-4`)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    best = repr(value)
    for digits in range(1, 18):
        for text in (f"{value:.{digits}g}", _short_exp(f"{value:.{digits - 1}e}")):
            if float(text) == value and len(text) < len(best):
                best = text
    return best


def _short_exp(text: str) -> str:
    mantissa, exp = text.split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    sign = "-" if exp.startswith("-") else ""
    return f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"


def last_fc_index(layers: tuple[Layer, ...] | list[Layer]) -> int | None:
    """Index of the last fully connected layer (the one without a default activation)."""
    for i in range(len(layers) - 1, -1, -1):
        if isinstance(layers[i], FC):
            return i
    return None


def _modifiers(bn: bool, bias: bool, act: str | None, default_act: str | None) -> str:
    out = ""
    if bn:
        out += "+bn"
    if bias == bn:  # bias defaults to `not bn`
        out += "+bias" if bias else "+nobias"
    if act != default_act:
        out += f"+{act or 'none'}"
    return out


def format_layer(layer: Layer, *, last_fc: bool = False, tags: bool = True) -> str:
    """One layer in the notation. `tags` writes the chain form's `(Conv)`/`(MaxPool)`."""
    if isinstance(layer, Conv):
        text = f"{layer.out_channels}c{layer.kernel}w{layer.stride}s{layer.padding}p"
        if layer.groups != 1:
            text += f"{layer.groups}g"
        text += _modifiers(layer.bn, layer.bias, layer.act, "relu")
        return ("(Conv)" if tags else "") + text
    if isinstance(layer, Pool):
        text = f"{layer.kernel}w{layer.stride}s" + (f"{layer.padding}p" if layer.padding else "")
        if layer.kind == "avg":
            return "(AvgPool)" + text
        return ("(MaxPool)" if tags else "") + text
    if isinstance(layer, FC):
        return f"{layer.out_features}fc" + _modifiers(layer.bn, layer.bias, layer.act, None if last_fc else "relu")
    if isinstance(layer, Flatten):
        return "(Flat)" + ("" if layer.declared is None else str(layer.declared))
    if isinstance(layer, LRN):
        return (
            f"(LRN){layer.size}n{format_number(layer.k)}k"
            f"{format_number(layer.alpha)}a{format_number(layer.beta)}b"
        )
    if isinstance(layer, Dropout):
        return f"(Dropout){format_number(layer.p)}"
    if isinstance(layer, BatchNorm):
        return "(BN)"
    if isinstance(layer, Activation):
        return {"relu": "(ReLU)", "tanh": "(Tanh)", "sigmoid": "(Sigmoid)"}[layer.kind]
    if isinstance(layer, AdaptiveAvgPool):
        if (layer.height, layer.width) == (1, 1):
            return "(GAP)"
        return f"(AdaptiveAvgPool){layer.height}x{layer.width}"
    raise TypeError(f"not a layer spec: {layer!r}")


def format_input(spec: NetworkSpec) -> str:
    """The `Input` tag: `Input(CxHxW)`, `Input(C)` or `Input`."""
    if spec.in_channels is None:
        return "Input"
    if spec.input_hw is None:
        return f"Input({spec.in_channels})"
    h, w = spec.input_hw
    return f"Input({spec.in_channels}x{h}x{w})"


def format_spec(spec: NetworkSpec, *, form: str = "chain") -> str:
    """The text of `spec`.

    `form="chain"` is the lecture's second line (`Input->(Conv)6c5w1s0p->...->(Output)`);
    `form="short"` its first (`6c5w1s0p 2w2s ...`, tags only where they are needed).
    `parse(format_spec(s)) == s` for every valid spec.
    """
    if form not in ("chain", "short"):
        raise ValueError(f"form must be 'chain' or 'short', got {form!r}")
    last = last_fc_index(spec.layers)
    chain = form == "chain"
    texts = [format_layer(layer, last_fc=i == last, tags=chain) for i, layer in enumerate(spec.layers)]
    words: list[str] = []  # runs of the same layer are written once with a count: 64c3w1s1p*2
    for text in texts:
        if words and words[-1].split("*")[0] == text:
            head, _, count = words[-1].partition("*")
            words[-1] = f"{head}*{int(count or 1) + 1}"
        else:
            words.append(text)
    if chain:
        return "->".join([format_input(spec), *words, "(Output)"])
    if spec.in_channels is not None:
        words.insert(0, format_input(spec))
    return " ".join(words)
