"""Building networks on the meta device quickly: shapes only, no storage, no initialisation.

`with torch.device("meta"):` builds any network without allocating its weights, but every
layer still runs its weight initialisation, and PyTorch implements the meta kernels of
`uniform_` and `normal_` in Python: building a ResNet-1202 that way spends about half its
time initialising values that do not exist. `meta_build()` is that device context plus one
rule: `torch.nn.init` functions and in-place random or fill methods called on a meta
tensor return it untouched. Everything else (factories getting `device="meta"`) is what
`torch.device("meta")` does.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["meta_build", "clone_meta"]

_INIT_METHODS = frozenset(
    getattr(torch.Tensor, name)
    for name in ("uniform_", "normal_", "zero_", "fill_", "random_", "exponential_", "log_normal_", "cauchy_",
                 "geometric_", "bernoulli_")  # fmt: skip
    if hasattr(torch.Tensor, name)
)


def _factories() -> Any:
    try:
        from torch.utils._device import _device_constructors

        return _device_constructors()
    except ImportError:  # pragma: no cover - every PyTorch with device contexts has it
        return frozenset()


class meta_build(TorchFunctionMode):
    """Context manager: build modules on the meta device, skipping weight initialisation."""

    def __init__(self) -> None:
        super().__init__()
        self.factories = _factories()

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _INIT_METHODS or (getattr(func, "__module__", None) == "torch.nn.init" and func.__name__.endswith("_")):
            target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes `tensor=` by keyword
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target  # nothing to initialise on the meta device
        if func in self.factories and kwargs.get("device") is None:
            kwargs["device"] = "meta"
        return func(*args, **kwargs)



_HOOK_DICTS = tuple(k for k, v in nn.Module().__dict__.items() if isinstance(v, dict) and "hook" in k)
_INTERNAL = frozenset(nn.Module().__dict__)


def _meta_tensor(t: torch.Tensor) -> torch.Tensor:
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def clone_meta(module: nn.Module) -> nn.Module:
    """A copy of a module built on the meta device: same classes, attributes and children,
    new meta parameters and buffers, no hooks. Several times faster than building the
    module again, for the repeated units of a very deep network.

    Raises `ValueError` if a tensor of `module` is not on the meta device, if it has hooks,
    or if a parameter is not a plain `nn.Parameter`: build those normally.
    """
    disable = getattr(torch._C, "DisableTorchFunction", None)  # no mode in the way of the copies
    with disable() if disable is not None else contextlib.nullcontext():
        return _clone(module)


def _clone(module: nn.Module) -> nn.Module:
    cls = type(module)
    new = cls.__new__(cls)
    d = module.__dict__
    state = d.copy()
    for k in _HOOK_DICTS:
        hooks = d.get(k)
        if hooks:
            raise ValueError(f"clone_meta: {cls.__name__} has hooks")
        if hooks is not None:
            state[k] = type(hooks)()
    params: dict[str, Any] = {}
    for name, p in d["_parameters"].items():
        if p is not None and (type(p) is not nn.Parameter or not p.is_meta):
            raise ValueError(f"clone_meta: parameter {name!r} of {cls.__name__} is not a meta nn.Parameter")
        params[name] = None if p is None else nn.Parameter(_meta_tensor(p), requires_grad=p.requires_grad)
    state["_parameters"] = params
    buffers: dict[str, Any] = {}
    for name, b in d["_buffers"].items():
        if b is not None and not b.is_meta:
            raise ValueError(f"clone_meta: buffer {name!r} of {cls.__name__} is not on the meta device")
        buffers[name] = None if b is None else _meta_tensor(b)
    state["_buffers"] = buffers
    state["_modules"] = {name: None if c is None else _clone(c) for name, c in d["_modules"].items()}
    for k, v in d.items():
        if k in _INTERNAL:
            continue
        kind = type(v)
        if kind is list or kind is dict or kind is set:
            state[k] = v.copy()  # no container shared between the copies
        elif isinstance(v, (torch.Tensor, nn.Module)):
            raise ValueError(f"clone_meta: {cls.__name__} holds a {kind.__name__} in {k!r}")
    state["_non_persistent_buffers_set"] = set(d["_non_persistent_buffers_set"])
    new.__dict__.update(state)
    return new
