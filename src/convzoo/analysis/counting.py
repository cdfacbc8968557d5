"""Counting rules: what one ATen operation costs.

The analysis runs the network on the meta device under a dispatch mode, so every
operation reaches these rules as an ATen op with its argument shapes, whether it came
from a module (`nn.Conv2d`) or from plain code in a `forward` (a residual `x + y`, a
`torch.cat`). Conventions (docs/analysis.md):

- MACs (multiply-accumulates, one multiply-add = 1) are counted for convolutions and
  matrix products only, and exactly as `torch.utils.flop_counter.FlopCounterMode` counts
  them divided by 2: a convolution costs N * prod(out spatial) * C_out * (C_in / groups) *
  prod(kernel) (grouped and 1x1 convolutions follow from the weight's shape); the bias is
  not a multiply-add and is not counted (torchvision's "GFLOPS" metadata, the ResNet
  paper's "multiply-adds" and FlopCounterMode all leave it out).
- Everything else is "other ops", counted apart and never added to MACs: one op per
  output element for activations and element-wise arithmetic (additions of residual
  branches included), two per element for batch normalisation (scale and shift once the
  statistics are known), kernel-area ops per output element for pooling, one op per
  input element for reductions and adaptive/global average pooling. Concatenation,
  padding, views and copies move data and cost no ops.
"""

from __future__ import annotations

from math import prod
from typing import Any, Callable

import torch

aten = torch.ops.aten

#: A rule takes (args, kwargs, out) and returns (macs, other_ops, kind).
Rule = Callable[[tuple[Any, ...], dict[str, Any], Any], "tuple[int, int, str]"]

KINDS = ("norm", "activation", "pool", "elementwise")


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(t.shape) if isinstance(t, torch.Tensor) else ()


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


def conv_macs(x_shape: tuple[int, ...], w_shape: tuple[int, ...], out_shape: tuple[int, ...], transposed: bool) -> int:
    """MACs of a (possibly grouped or transposed) convolution, bias excluded.

    `w_shape` is (C_out, C_in / groups, *kernel) for a convolution and
    (C_in, C_out / groups, *kernel) for a transposed one, so the group count is
    already in the weight. A transposed convolution does its work per *input* position.
    """
    spatial = (x_shape if transposed else out_shape)[2:]
    return x_shape[0] * prod(spatial) * prod(w_shape)


def _conv(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
    transposed = bool(args[6]) if len(args) > 6 else bool(kwargs.get("transposed", False))
    return conv_macs(_shape(args[0]), _shape(args[1]), _shape(_first(out)), transposed), 0, "matmul"


def _mm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
    m, k = _shape(args[0])
    n = _shape(args[1])[-1]
    return m * k * n, 0, "matmul"


def _addmm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
    # addmm(bias, a, b): the bias add is not a multiply-add (FlopCounterMode agrees)
    return _mm(args[1:], kwargs, out)


def _bmm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
    b, m, k = _shape(args[0])
    n = _shape(args[1])[-1]
    return b * m * k * n, 0, "matmul"


def _baddbmm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
    return _bmm(args[1:], kwargs, out)


def _per_output(kind: str, factor: int = 1) -> Rule:
    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
        return 0, factor * _first(out).numel(), kind

    return rule


def _per_input(kind: str) -> Rule:
    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
        return 0, args[0].numel(), kind

    return rule


def _pool(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
    kernel = args[1] if len(args) > 1 else kwargs.get("kernel_size")
    return 0, _first(out).numel() * prod(kernel), "pool"


def _norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> tuple[int, int, str]:
    # y = x * scale + shift per element once mean and variance are known
    return 0, 2 * _first(out).numel(), "norm"


def _collect() -> dict[Any, Rule]:
    table: dict[str, Rule] = {
        "convolution": _conv,
        "_convolution": _conv,
        "convolution_overrideable": _conv,
        "cudnn_convolution": _conv,
        "mm": _mm,
        "addmm": _addmm,
        "bmm": _bmm,
        "baddbmm": _baddbmm,
        "native_batch_norm": _norm,
        "_native_batch_norm_legit": _norm,
        "_native_batch_norm_legit_no_training": _norm,
        "cudnn_batch_norm": _norm,
        "native_layer_norm": _norm,
        "native_group_norm": _norm,
        "max_pool2d_with_indices": _pool,
        "max_pool3d_with_indices": _pool,
        "max_pool2d": _pool,
        "avg_pool2d": _pool,
        "avg_pool3d": _pool,
        "avg_pool1d": _pool,
        "_adaptive_avg_pool2d": _per_input("pool"),
        "adaptive_avg_pool2d": _per_input("pool"),
        "adaptive_max_pool2d": _per_input("pool"),
        "mean": _per_input("pool"),
        "sum": _per_input("elementwise"),
        "_softmax": _per_output("activation", 3),
        "_log_softmax": _per_output("activation", 3),
    }
    for name in ("relu", "relu_", "gelu", "gelu_", "silu", "silu_", "sigmoid", "sigmoid_", "tanh", "tanh_",
                 "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "threshold",
                 "threshold_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "clamp", "clamp_",
                 "clamp_min", "clamp_min_"):
        table[name] = _per_output("activation")
    for name in ("add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "pow", "pow_", "neg", "sqrt",
                 "rsqrt", "exp", "abs", "addcmul", "addcmul_"):
        table[name] = _per_output("elementwise")
    rules: dict[Any, Rule] = {}
    for name, rule in table.items():
        packet = getattr(aten, name, None)
        if packet is not None:  # some ops do not exist in every PyTorch version
            rules[packet] = rule
    return rules


_RULES: dict[Any, Rule] | None = None


def rules() -> dict[Any, Rule]:
    """The rules, keyed by ATen op packet (built on first use, not at import)."""
    global _RULES
    if _RULES is None:
        _RULES = _collect()
    return _RULES
