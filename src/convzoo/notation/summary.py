"""Layer-by-layer table of a network written in the notation (what `convzoo spec` prints).

One row per layer of the text (a conv row includes its batch norm and activation), with
the output shape, parameters and multiply-accumulates. The numbers come from the analysis
engine (`convzoo.analysis.analyze`, the project's one MAC counter) on the network built on
the meta device; its shapes are checked against the pure-Python walk (`shapes.check`).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import NotationError
from .grammar import parse
from .shapes import check, resolve_input
from .spec import Layer, NetworkSpec, format_layer, format_spec, last_fc_index, layer_labels

#: Spatial size used when neither the text nor the caller gives one: the lecture's LeNet input.
DEFAULT_HW = (32, 32)
#: what `engine=` accepts; both mean the analysis engine, the one that counts ("auto" is the default)
ENGINES = ("auto", "analysis")


def layer_type(layer: Layer) -> str:
    """A short type name of a layer spec: Conv, MaxPool, AvgPool, Flat, FC, LRN, ..."""
    return layer_labels(layer)[1]


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
    `output_shape`. `engine` is "auto" or "analysis" (the same: the analysis engine counts).
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
    measured = _with_analysis(net, size)
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
        "engine": "analysis",
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
