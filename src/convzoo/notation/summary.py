"""Layer-by-layer table of a network written in the notation (what `convzoo spec` prints).

One row per layer of the text (a conv row includes its batch norm and activation), with
the output shape, parameters and multiply-accumulates. The numbers come from the analysis
engine (`convzoo.analysis.analyze`) when it is available, else from a forward pass on the
meta device with hooks; the shapes are also checked against the pure-Python walk.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import NotationError
from .grammar import parse
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
    format_layer,
    format_spec,
    last_fc_index,
)

#: Spatial size used when neither the text nor the caller gives one: the lecture's LeNet input.
DEFAULT_HW = (32, 32)
ENGINES = ("auto", "analysis", "shape-walk")


def layer_type(layer: Layer) -> str:
    """A short type name of a layer spec: Conv, MaxPool, AvgPool, Flat, FC, LRN, ..."""
    if isinstance(layer, Conv):
        return "Conv"
    if isinstance(layer, Pool):
        return "MaxPool" if layer.kind == "max" else "AvgPool"
    if isinstance(layer, FC):
        return "FC"
    if isinstance(layer, Flatten):
        return "Flat"
    if isinstance(layer, LRN):
        return "LRN"
    if isinstance(layer, Dropout):
        return "Dropout"
    if isinstance(layer, BatchNorm):
        return "BN"
    if isinstance(layer, Activation):
        return {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}[layer.kind]
    if isinstance(layer, AdaptiveAvgPool):
        return "GAP" if (layer.height, layer.width) == (1, 1) else "AdaptiveAvgPool"
    raise TypeError(f"not a layer spec: {layer!r}")  # pragma: no cover


def summarize(
    text: str,
    *,
    input_size: Sequence[int] | None = None,
    engine: str = "auto",
) -> dict[str, Any]:
    """Parse, check and measure `text` at `input_size` (C, H, W).

    The input defaults to the text's `Input(CxHxW)`, then to C x 32 x 32 (C from the text,
    else 1). Returns a JSON-ready dict: `spec` (canonical text), `input_size`, `engine`,
    `layers` (index, spec, name, type, output_shape, params, macs), `total_params`, `macs`,
    `output_shape`. `engine` is "auto", "analysis" or "shape-walk".
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    spec = parse(text)
    channels, hw = resolve_input(spec, None, input_size)
    size = (channels, *(hw or DEFAULT_HW))
    try:
        rows = check(spec, input_size=size, text=text)
    except NotationError as err:
        if hw is not None:
            raise
        hint = f" (no input size was given, so {size[0]}x{size[1]}x{size[2]} was used: give Input(CxHxW) or --input)"
        raise NotationError(err.message + hint, err.text, err.position) from None

    import torch

    from .builder import build

    with torch.device("meta"):  # shapes only: no weights are allocated
        net = build(spec, input_size=size, text=text)
    measured = None
    used = "shape-walk"
    if engine in ("auto", "analysis"):
        try:
            measured = _with_analysis(net, size)
            used = "analysis"
        except Exception:
            if engine == "analysis":
                raise
    if measured is None:
        measured = _with_hooks(net, size)
    last = last_fc_index(spec.layers)
    layers = []
    for i, (layer, row, name) in enumerate(zip(spec.layers, rows, net.layer_names)):
        shape, params, macs = measured[name]
        walked = [d for d in row.output_shape]
        if list(shape) != walked:  # the arithmetic walk and the real modules must agree
            raise AssertionError(f"shape walk {walked} != measured {list(shape)} at {name}")
        layers.append(
            {
                "index": i + 1,
                "spec": format_layer(layer, last_fc=i == last),
                "name": name,
                "type": layer_type(layer),
                "output_shape": list(shape),
                "params": int(params),
                "macs": int(macs),
            }
        )
    canonical = NetworkSpec(spec.layers, size[0], (size[1], size[2]))
    return {
        "spec": format_spec(canonical),
        "input_size": list(size),
        "engine": used,
        "layers": layers,
        "total_params": sum(r["params"] for r in layers),
        "macs": sum(r["macs"] for r in layers),
        "output_shape": layers[-1]["output_shape"],
    }


def _with_analysis(net: Any, size: tuple[int, int, int]) -> dict[str, tuple[list[int], int, int]]:
    from ..analysis import analyze

    report = analyze(net, input_size=size)
    by_name = {row.name: row for row in report.layers}
    out: dict[str, tuple[list[int], int, int]] = {}
    for name in net.layer_names:
        row = by_name[name]
        shape = list(row.output_shape or [])
        out[name] = (shape[1:], row.cum_params, row.cum_macs)  # drop the batch axis
    return out


def _with_hooks(net: Any, size: tuple[int, int, int]) -> dict[str, tuple[list[int], int, int]]:
    """Meta-device forward: output shape per layer, parameters, and MACs of conv and fc
    (one multiply-add per weight use, the convention of the papers' tables)."""
    import torch
    from torch import nn

    shapes: dict[str, list[int]] = {}
    macs: dict[str, int] = {name: 0 for name in net.layer_names}
    handles = []

    def top_hook(name: str):
        def hook(_m: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            shapes[name] = list(output.shape[1:])

        return hook

    def mac_hook(name: str):
        def hook(m: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1]
                macs[name] += output[0].numel() * (m.in_channels // m.groups) * k
            elif isinstance(m, nn.Linear):
                macs[name] += m.in_features * m.out_features

        return hook

    for name in net.layer_names:
        child = net.get_submodule(name)
        handles.append(child.register_forward_hook(top_hook(name)))
        for sub in child.modules():
            if isinstance(sub, (nn.Conv2d, nn.Linear)):
                handles.append(sub.register_forward_hook(mac_hook(name)))
    try:
        was_training = net.training
        net.eval()
        with torch.no_grad():
            net(torch.empty((1, *size), device="meta"))
        net.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return {
        name: (shapes[name], sum(p.numel() for p in net.get_submodule(name).parameters()), macs[name])
        for name in net.layer_names
    }
