"""Print a module in the compact notation: module -> `NetworkSpec` -> text.

The module's computation is traced with torch.fx (not its attribute order), so nested
modules (`stem`, `stages`, `head`) and functional calls (`torch.flatten`, `F.relu`) are
followed as they run. The traced graph must be a single chain, each step consuming only
the previous one's output; a residual add, a concatenation or a module the notation has
no word for raises `SpecError` naming the module or the operation.
"""

from __future__ import annotations

import operator
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import SpecError
from ..layers.lrn import LRN as LRNLayer
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
    format_spec,
)

_ACT_MODULES = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
_ACT_FUNCTIONS = {
    F.relu: "relu",
    torch.relu: "relu",
    torch.relu_: "relu",
    F.relu_: "relu",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid", "sigmoid_": "sigmoid"}
_SHAPE_HELPERS = ("size", "dim")


class _Tracer(fx.Tracer):
    """Keeps the lecture's LRN, and any custom module without children, as one node, so an
    error names the module instead of the arithmetic inside it."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, (LRNLayer, nn.Identity)):
            return True
        if not isinstance(m, nn.Sequential) and not any(True for _ in m.children()):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def _where(node: fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    if stack:
        path = list(stack)[-1]
        if isinstance(path, str) and path:
            return f" in '{path}'"
    return ""


def _pair(value: Any, what: str, where: str) -> int:
    """An int from `value` (int or a square pair); a non-square value cannot be written."""
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise SpecError(f"to_spec cannot express {where}: its {what} {tuple(value)} is not square")
        value = value[0]
    return int(value)


def _trace(module: nn.Module) -> fx.Graph:
    try:
        return _Tracer().trace(module)
    except SpecError:
        raise
    except Exception as err:  # data-dependent control flow, unsupported ops...
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"to_spec cannot follow {type(module).__name__}'s forward as one chain of layers: {message}") from err


def _is_shape_helper(node: fx.Node) -> bool:
    if node.op == "call_method" and node.target in _SHAPE_HELPERS:
        return True
    if node.op == "call_function" and node.target is getattr and len(node.args) > 1 and node.args[1] == "shape":
        return True
    if node.op == "call_function" and node.target is operator.getitem:
        first = node.args[0]
        return isinstance(first, fx.Node) and _is_shape_helper(first)
    return False


def _node_inputs(node: fx.Node) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda n: found.append(n) or n)
    return [n for n in found if not _is_shape_helper(n)]


def _arg(node: fx.Node, index: int, name: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _ops(module: nn.Module) -> list[tuple[str, Any, str]]:
    """The chain as (kind, payload, description) steps, in the order they run."""
    graph = _trace(module)
    nodes = list(graph.nodes)
    inputs = [n for n in nodes if n.op == "placeholder" and n.users]
    if len(inputs) != 1:
        raise SpecError(f"to_spec needs a network with one input; {type(module).__name__} takes {len(inputs)}")
    prev = inputs[0]
    steps: list[tuple[str, Any, str]] = []
    for node in nodes:
        if node.op == "placeholder" or _is_shape_helper(node):
            continue
        if node.op == "get_attr":
            raise SpecError(f"to_spec cannot express {type(module).__name__}: it uses the tensor '{node.target}' directly{_where(node)}")
        args = _node_inputs(node)
        if node.op == "output":
            if args != [prev]:
                raise SpecError(f"to_spec cannot express {type(module).__name__}: its forward does not return one tensor from a single chain")
            break
        desc = _describe(module, node)
        if args != [prev]:
            raise SpecError(
                f"to_spec cannot express {desc}: it takes {len(args)} inputs where the notation allows one chain "
                "(a residual add, a concatenation or a branch)"
            )
        chain_users = [u for u in prev.users if not _is_shape_helper(u)]
        if len(chain_users) != 1:
            users = ", ".join(_describe(module, u) for u in chain_users)
            raise SpecError(
                f"to_spec cannot express {desc}: the output before it feeds {len(chain_users)} operations "
                f"({users}): a branch or a shortcut, where the notation is one chain"
            )
        step = _step(module, node, desc)
        if step is not None:
            steps.append(step)
        prev = node
    return steps


def _describe(module: nn.Module, node: fx.Node) -> str:
    if node.op == "call_module":
        sub = module.get_submodule(str(node.target))
        return f"module '{node.target}' ({type(sub).__name__})"
    name = getattr(node.target, "__name__", str(node.target))
    return f"operation '{name}'{_where(node)}"


def _step(module: nn.Module, node: fx.Node, desc: str) -> tuple[str, Any, str] | None:
    if node.op == "call_module":
        m = module.get_submodule(str(node.target))
        return _module_step(m, desc)
    if node.op == "call_function":
        target = node.target
        if target in _ACT_FUNCTIONS:
            return ("act", _ACT_FUNCTIONS[target], desc)
        if target is torch.flatten:
            return _flatten_step(_arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1), desc)
        if target is F.dropout:
            return ("dropout", float(_arg(node, 1, "p", 0.5)), desc)
        if target is F.adaptive_avg_pool2d:
            size = _arg(node, 1, "output_size", None)
            h, w = (size, size) if isinstance(size, int) else tuple(size)
            return ("adaptive", (h, w), desc)
    if node.op == "call_method":
        name = str(node.target)
        if name in _ACT_METHODS:
            return ("act", _ACT_METHODS[name], desc)
        if name == "contiguous":
            return None
        if name == "flatten":
            return _flatten_step(_arg(node, 1, "start_dim", 0), _arg(node, 2, "end_dim", -1), desc)
        if name in ("view", "reshape"):
            shape = node.args[1:] if len(node.args) > 2 else (node.args[1] if len(node.args) > 1 else ())
            shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
            # x.view(x.size(0), -1), x.reshape(x.shape[0], -1), x.view(-1, 400): a flatten
            if len(shape) == 2:
                batch = shape[0] == -1 or (isinstance(shape[0], fx.Node) and _is_shape_helper(shape[0]))
                rest = shape[1] == -1 or (isinstance(shape[1], int) and shape[1] > 0)
                if batch and rest and not (shape[0] == -1 and shape[1] == -1):
                    return ("flatten", None, desc)
    raise SpecError(f"to_spec cannot express {desc}: the notation has no word for it")


def _flatten_step(start: Any, end: Any, desc: str) -> tuple[str, Any, str]:
    if start != 1 or end != -1:
        raise SpecError(f"to_spec cannot express {desc}: only a flatten of all but the batch axis (start_dim=1) is (Flat)")
    return ("flatten", None, desc)


def _module_step(m: nn.Module, desc: str) -> tuple[str, Any, str] | None:
    kind = type(m)
    if kind in _ACT_MODULES:
        return ("act", _ACT_MODULES[kind], desc)
    if isinstance(m, nn.Identity):
        return None
    if kind is nn.Conv2d:
        if _pair(m.dilation, "dilation", desc) != 1:
            raise SpecError(f"to_spec cannot express {desc}: dilation {m.dilation} (the notation has none)")
        if m.padding_mode != "zeros":
            raise SpecError(f"to_spec cannot express {desc}: padding mode '{m.padding_mode}'")
        k = _pair(m.kernel_size, "window", desc)
        padding = m.padding
        if isinstance(padding, str):  # 'valid' or 'same' (stride 1 only, as PyTorch requires)
            if padding == "same" and k % 2 == 0:
                raise SpecError(f"to_spec cannot express {desc}: 'same' padding of an even window is asymmetric")
            padding = 0 if padding == "valid" else (k - 1) // 2
        return ("conv", m, desc, k, _pair(m.stride, "stride", desc), _pair(padding, "padding", desc))  # type: ignore[return-value]
    if kind in (nn.MaxPool2d, nn.AvgPool2d):
        if getattr(m, "ceil_mode", False):
            raise SpecError(f"to_spec cannot express {desc}: ceil_mode=True (the notation floors, as the lecture's formula)")
        if kind is nn.MaxPool2d and _pair(m.dilation, "dilation", desc) != 1:
            raise SpecError(f"to_spec cannot express {desc}: dilation {m.dilation}")
        if kind is nn.AvgPool2d and (not m.count_include_pad or m.divisor_override is not None):
            raise SpecError(f"to_spec cannot express {desc}: count_include_pad=False or a divisor override")
        k = _pair(m.kernel_size, "window", desc)
        stride = _pair(m.stride if m.stride is not None else k, "stride", desc)
        pool = Pool("max" if kind is nn.MaxPool2d else "avg", k, stride, _pair(m.padding, "padding", desc))
        return ("pool", pool, desc)
    if kind is nn.AdaptiveAvgPool2d:
        size = m.output_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        if h is None or w is None:
            raise SpecError(f"to_spec cannot express {desc}: an output size of None keeps the input's side")
        return ("adaptive", (int(h), int(w)), desc)
    if kind in (nn.BatchNorm2d, nn.BatchNorm1d):
        if not m.affine or not m.track_running_stats:
            raise SpecError(f"to_spec cannot express {desc}: only affine batch norm with running statistics is (BN)")
        return ("bn", m.num_features, desc)
    if isinstance(m, LRNLayer) and kind is LRNLayer:
        return ("lrn", LRN(m.size, m.k, m.alpha, m.beta), desc)
    if kind is nn.LocalResponseNorm:
        # PyTorch divides alpha by n (a mean over the window); the lecture's formula sums, so
        # the same layer is written with alpha / n. Even windows are centred differently.
        if m.size % 2 == 0:
            raise SpecError(f"to_spec cannot express {desc}: an even LocalResponseNorm window is not centred")
        return ("lrn", LRN(m.size, float(m.k), float(m.alpha) / m.size, float(m.beta)), desc)
    if kind is nn.Dropout:
        return ("dropout", float(m.p), desc)
    if kind is nn.Flatten:
        return _flatten_step(m.start_dim, m.end_dim, desc)
    if kind is nn.Linear:
        return ("fc", m, desc)
    raise SpecError(f"to_spec cannot express {desc}: the notation has no word for it")


def module_to_spec(module: nn.Module, *, input_size: Sequence[int] | None = None) -> NetworkSpec:
    """The `NetworkSpec` of a sequential `module` (see the module docstring for the rules)."""
    if not isinstance(module, nn.Module):
        raise SpecError(f"to_spec needs a torch.nn.Module, got {type(module).__name__}")
    steps = _ops(module)
    layers: list[Layer] = []
    fc_in: dict[int, int] = {}  # layer index -> the vector size it reads (fc, batch norm)
    host: int | None = None  # index of a conv/fc that the next bn or activation may join
    first_channels: int | None = None
    flattened = False
    for step in steps:
        kind, payload, desc = step[0], step[1], step[2]
        if kind == "conv":
            m = payload
            if flattened:
                raise SpecError(f"to_spec cannot express {desc}: a convolution after the flatten")
            if first_channels is None:
                first_channels = m.in_channels
            k, stride, padding = step[3], step[4], step[5]  # type: ignore[misc]
            layers.append(Conv(m.out_channels, k, stride, padding, m.groups, False, m.bias is not None, None))
            host = len(layers) - 1
            continue
        if kind == "fc":
            m = payload
            if not flattened:
                raise SpecError(
                    f"to_spec cannot express {desc}: a fully connected layer on an input the network did not flatten "
                    "(the notation needs (Flat) before fc)"
                )
            layers.append(FC(m.out_features, False, m.bias is not None, None))
            fc_in[len(layers) - 1] = m.in_features
            host = len(layers) - 1
            continue
        if kind == "bn" and host is not None and host == len(layers) - 1:
            target = layers[host]
            if not target.bn and target.act is None:  # type: ignore[union-attr]
                layers[host] = _replace(target, bn=True)
                continue
        if kind == "act" and host is not None and host == len(layers) - 1 and layers[host].act is None:  # type: ignore[union-attr]
            layers[host] = _replace(layers[host], act=payload)
            host = None
            continue
        host = None
        if kind == "bn":
            layers.append(BatchNorm())
            fc_in[len(layers) - 1] = payload
        elif kind == "act":
            layers.append(Activation(payload))
        elif kind == "pool":
            layers.append(payload)
        elif kind == "adaptive":
            layers.append(AdaptiveAvgPool(*payload))
        elif kind == "lrn":
            layers.append(payload)
        elif kind == "dropout":
            layers.append(Dropout(payload))
        elif kind == "flatten":
            flattened = True
            layers.append(Flatten())
        else:  # pragma: no cover - _ops only yields the kinds above
            raise AssertionError(kind)
        if flattened and kind in ("pool", "adaptive", "lrn"):
            raise SpecError(f"to_spec cannot express {desc}: it comes after the flatten")
    if not layers:
        raise SpecError(f"to_spec found no layers in {type(module).__name__}")
    # The declared size of each (Flat) is what the first fc (or batch norm) after it reads:
    # the lecture's (Flat)400, and what lets the text build without an input size.
    for i, layer in enumerate(layers):
        if isinstance(layer, Flatten):
            for j in range(i + 1, len(layers)):
                if isinstance(layers[j], Flatten):
                    break
                if j in fc_in:
                    layers[i] = Flatten(fc_in[j])
                    break
    in_channels, hw = _input_of(module, input_size, first_channels)
    return NetworkSpec(tuple(layers), in_channels, hw)


def _replace(layer: Layer, **changes: Any) -> Layer:
    from dataclasses import replace

    return replace(layer, **changes)


def _input_of(
    module: nn.Module, input_size: Sequence[int] | None, first_channels: int | None
) -> tuple[int | None, tuple[int, int] | None]:
    if input_size is not None:
        size = tuple(int(v) for v in input_size)
        if len(size) != 3:
            raise SpecError(f"input_size must be (C, H, W), got {input_size!r}")
        return size[0], (size[1], size[2])
    own = getattr(module, "input_size", None)  # a SpecNet remembers the size it was built for
    if isinstance(own, tuple) and len(own) == 3:
        return own[0], (own[1], own[2])
    name = getattr(module, "zoo_name", None)
    if isinstance(name, str):
        from ..registry import model_info

        try:
            _, h, w = model_info(name).default_input
        except Exception:  # a name not in the registry: no size, not an error
            pass
        else:
            channels = getattr(module, "in_channels", None) or first_channels
            if channels is not None:
                return int(channels), (h, w)
    return first_channels, None


def to_spec(module: nn.Module, *, input_size: Sequence[int] | None = None, form: str = "chain") -> str:
    """The compact notation of a sequential `module` (LeNet, AlexNet, VGG, any plain chain).

    `input_size` (C, H, W) is written as `Input(CxHxW)`; by default it is the size a
    `SpecNet` was built for, or a zoo model's default input. `form` is "chain" (the
    lecture's `Input->(Conv)6c5w1s0p->...->(Output)`) or "short" (`6c5w1s0p 2w2s ...`).
    Raises `SpecError` naming the module or operation the notation cannot express.
    """
    if form not in ("chain", "short"):
        raise SpecError(f"form must be 'chain' or 'short', got {form!r}")
    return format_spec(module_to_spec(module, input_size=input_size), form=form)
