"""The analysis engine: parameters, MACs and memory of any `nn.Module`, without real tensors.

The network runs on the meta device (shapes only, no storage), twice:

1. inference pass (eval mode, no autograd) under a `TorchDispatchMode`: every ATen op,
   whether it comes from a module or from plain code in a `forward` (residual additions,
   concatenations), is priced by `counting.rules()` and charged to the innermost module
   running at that moment (forward pre/post hooks keep that stack). The same mode follows
   the life of every activation storage (weak references on the meta tensors) to get the
   bytes written and the peak live bytes of inference.
2. training pass (train mode, autograd on) with `saved_tensors_hooks`: the tensors that
   autograd keeps for backward are exactly the activation memory of training; storages
   are deduplicated (a ReLU output saved by the ReLU and by the next convolution counts
   once) and parameters are left out (they are counted as parameters).

A registered name is built on the meta device (`convzoo.meta.meta_build`). A real module
is never copied or moved: meta stand-ins replace its parameters and buffers for the
duration of the call and the originals are put back (`_Runner`), so the user's module is
untouched and no weight memory is allocated.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
import weakref
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..cli_args import parse_input_size  # the one `--input` parser, re-exported by `convzoo.analysis`
from ..errors import ConfigError, ConvzooError, InputSizeError
from ..meta import meta_build
from . import replay as R
from .counting import KINDS, rules
from .report import OPTIMIZER_STATE, LayerRecord, MemoryReport, Report

__all__ = ["Prepared", "analyze", "parse_input_size", "training_estimate", "with_training"]


def _check_run(batch_size: int, dtype: torch.dtype) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ConfigError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")


def _check_input_size(input_size: Sequence[int]) -> tuple[int, int, int]:
    try:
        values = tuple(int(v) for v in input_size)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ConfigError(f"bad input size {input_size!r}: expected (C, H, W) with three positive integers")
    return values  # type: ignore[return-value]


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


def _shape_of(obj: Any) -> list[Any] | None:
    if isinstance(obj, torch.Tensor):
        return list(obj.shape)
    if isinstance(obj, (tuple, list)):
        shapes = [_shape_of(o) for o in obj]
        return shapes if any(s is not None for s in shapes) else None
    return None


def _like(x: torch.Tensor) -> torch.Tensor:
    """`torch.empty_like(x)` without its Python stride computation, for dense layouts."""
    if x.is_contiguous():
        return torch.empty(x.shape, dtype=x.dtype, device=x.device)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
    return torch.empty_like(x)


def _batch_norm_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # What PyTorch's (Python) meta kernel computes: an output shaped and strided like the
    # input, and per-channel mean and inverse std (float32 for half types).
    x = args[0]
    stats = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    c = x.shape[1]
    return _like(x), torch.empty((c,), dtype=stats, device=x.device), torch.empty((c,), dtype=stats, device=x.device)


def _same_layout(args: tuple[Any, ...]) -> bool:
    a, b = args[0], args[1]
    return (
        isinstance(b, torch.Tensor)
        and b.is_meta
        and a.shape == b.shape
        and a.dtype == b.dtype
        and a.stride() == b.stride()
    )


def _conv_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # aten.convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    x, w = args[0], args[1]
    if len(args) < 9 or kwargs or args[6] or not x.is_contiguous() or x.dim() != w.dim():
        return None
    stride, padding, dilation, groups = args[3], args[4], args[5], args[8]
    if x.shape[1] != w.shape[1] * groups or x.dtype != w.dtype:
        return None
    spatial = []
    for i, size in enumerate(x.shape[2:]):
        k = dilation[i] * (w.shape[2 + i] - 1) + 1
        out = (size + 2 * padding[i] - k) // stride[i] + 1
        if out < 1:
            return None  # let PyTorch raise its own error for an input that is too small
        spatial.append(out)
    return torch.empty((x.shape[0], w.shape[0], *spatial), dtype=x.dtype, device=x.device)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _dense_like(x: Any) -> Any:
    # `empty_like` (which keeps a dense tensor's strides) for a contiguous or channels-last
    # meta tensor; None for any other
    if not isinstance(x, torch.Tensor) or not x.is_meta:
        return None
    # only the canonical strides: a size-1 dimension may carry any stride (a [..., ::2] view
    # of shape 1x1x1x1 has strides 2,2,2,2 and is "contiguous"), and empty_like then differs
    canonical = [torch.empty(x.shape, device="meta").stride()]
    if x.dim() == 4:
        canonical.append(torch.empty(x.shape, device="meta", memory_format=torch.channels_last).stride())
    if x.stride() in canonical:
        return torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device)
    return None


def _scalar_like(t: Any) -> bool:
    # a Python number reaches an op as a 0-dim "wrapped number" tensor (on the CPU); a 0-dim
    # tensor takes no part in type promotion against a float tensor unless it is complex
    return isinstance(t, torch.Tensor) and t.dim() == 0 and not t.is_complex()


def _elementwise_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # add/mul/div of contiguous same-dtype floating meta tensors (with broadcasting) and
    # scalars: a contiguous result of the broadcast shape. PyTorch's meta kernels for these
    # are Python references (torch._refs).
    if kwargs or len(args) != 2:
        return None
    full = [a for a in args if isinstance(a, torch.Tensor) and a.dim() > 0]
    if not full or any(not (_scalar_like(a) or isinstance(a, (int, float)) and not isinstance(a, bool))
                       for a in args if not (isinstance(a, torch.Tensor) and a.dim() > 0)):  # fmt: skip
        return None
    first = full[0]
    if not first.dtype.is_floating_point:
        return None
    shape: list[int] = []
    for t in full:
        if not t.is_meta or t.dtype != first.dtype or not t.is_contiguous():
            return None
        if t.dim() > len(shape):
            shape = [1] * (t.dim() - len(shape)) + shape
        for i, size in enumerate(t.shape, start=len(shape) - t.dim()):
            if size != shape[i]:
                if shape[i] == 1:
                    shape[i] = size
                elif size != 1:
                    return None  # not broadcastable: PyTorch raises its own error
    return torch.empty(shape, dtype=first.dtype, device=first.device)


def _unary_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # tanh, sigmoid, pow(x, number) of a floating meta tensor: a result laid out like it
    x = args[0]
    if kwargs or not x.dtype.is_floating_point:
        return None
    if len(args) == 2 and (isinstance(args[1], bool) or not isinstance(args[1], (int, float))):
        return None
    return _like(x) if len(args) <= 2 else None


def _mean_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # aten.mean.dim(x, dims, keepdim=False): average pooling written as `x.mean((2, 3))`
    x = args[0]
    if kwargs or len(args) < 2 or len(args) > 3 or not x.dtype.is_floating_point or not x.is_contiguous():
        return None
    dims, keepdim = args[1], (args[2] if len(args) == 3 else False)
    if not isinstance(dims, (list, tuple)) or not dims or not isinstance(keepdim, bool):
        return None
    n = x.dim()
    if any(isinstance(d, bool) or not isinstance(d, int) or not -n <= d < n for d in dims):
        return None
    reduced = {d % n for d in dims}
    if len(reduced) != len(dims):
        return None
    shape = [1 if i in reduced else s for i, s in enumerate(x.shape) if keepdim or i not in reduced]
    return torch.empty(shape, dtype=x.dtype, device=x.device)


def _channels_last_like(shape: Sequence[int], strides: Sequence[int]) -> bool:
    # PyTorch's test for channels-last strides (`suggest_memory_format`), 4-d and 5-d
    if len(shape) == 4:
        order = (1, 3, 2, 0)
    elif len(shape) == 5:
        order = (1, 4, 3, 2, 0)
    else:
        return False
    if strides[1] == 0:
        return False
    least = 0
    for d in order:
        if shape[d] == 0 or strides[d] < least:
            return False
        if d == 0 and least == strides[1]:
            return False
        least = strides[d] * shape[d]
    return True


def _pool_input(x: Any, spatial: int) -> Any:
    # the memory format of a pooling result for a dense input of `spatial` pooled dims, or None
    if not isinstance(x, torch.Tensor) or not x.is_meta or not x.dtype.is_floating_point:
        return None
    if x.dim() not in (spatial + 1, spatial + 2) or x.numel() == 0:
        return None
    if spatial == 2 and _channels_last_like(x.shape, x.stride()):
        return torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else None
    # PyTorch's 3-d pooling result is contiguous whatever the input's layout; take only the plain case
    return torch.contiguous_format if x.is_contiguous() else None


def _pool_args(value: Any, spatial: int, default: Any = None) -> tuple[int, ...] | None:
    # a kernel/stride/padding/dilation argument: one int for all dims, or one per dim
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * spatial
    if not isinstance(value, (list, tuple)) or len(value) not in (1, spatial):
        return None
    if any(isinstance(v, bool) or not isinstance(v, int) for v in value):
        return None
    return tuple(value) * spatial if len(value) == 1 else tuple(value)


def _pooled_size(size: int, k: int, pad: int, stride: int, dilation: int, ceil: bool) -> int | None:
    # PyTorch's `pooling_output_shape` and the checks around it; None where PyTorch raises
    if k < 1 or stride < 1 or dilation < 1 or pad < 0 or pad > ((k - 1) * dilation + 1) // 2 or pad > k // 2:
        return None
    out = (size + 2 * pad - dilation * (k - 1) - 1 + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out if out >= 1 else None


def _pool_meta(spatial: int, with_indices: bool) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
    # max_pool2d_with_indices(x, kernel, stride=(), padding=0, dilation=1, ceil_mode=False) and
    # avg_pool2d/3d(x, kernel, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
    # divisor_override=None): PyTorch's meta kernels are Python (torch._meta_registrations)
    names = ("kernel", "stride", "padding", "dilation", "ceil_mode") if with_indices else (
        "kernel", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if kwargs or not args or len(args) > len(names) + 1:
            return None
        fmt = _pool_input(args[0], spatial)
        if fmt is None:
            return None
        given = dict(zip(names, args[1:]))
        kernel = _pool_args(given.get("kernel"), spatial)
        if kernel is None:
            return None
        stride = _pool_args(given.get("stride"), spatial, kernel)
        padding = _pool_args(given.get("padding", 0), spatial)
        dilation = _pool_args(given.get("dilation", 1), spatial)
        ceil = given.get("ceil_mode", False)
        if stride is None or padding is None or dilation is None or not isinstance(ceil, bool):
            return None
        if not isinstance(given.get("count_include_pad", True), bool) or given.get("divisor_override") is not None:
            return None
        x = args[0]
        sizes = []
        for i, size in enumerate(x.shape[-spatial:]):
            if spatial == 3 and size < kernel[i]:
                return None  # PyTorch's 3-d average pooling refuses an input smaller than the kernel
            out = _pooled_size(size, kernel[i], padding[i], stride[i], dilation[i], ceil)
            if out is None:
                return None
            sizes.append(out)
        shape = (*x.shape[:-spatial], *sizes)
        result = torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=fmt)
        if not with_indices:
            return result
        return result, torch.empty(shape, dtype=torch.int64, device=x.device, memory_format=fmt)

    return rule


def _adaptive_avg_pool2d_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs or len(args) != 2:
        return None
    x, size = args
    fmt = _pool_input(x, 2)
    size = _pool_args(size, 2)
    if fmt is None or size is None or min(size) < 0:
        return None
    return torch.empty((*x.shape[:-2], *size), dtype=x.dtype, device=x.device, memory_format=fmt)


def _index_copy_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # index_copy(x, dim, index, source): a result like x (LeNet-5's partial connection table)
    if kwargs or len(args) != 4:
        return None
    x, dim, index, source = args
    if not isinstance(x, torch.Tensor) or not x.is_contiguous() or isinstance(dim, bool) or not isinstance(dim, int):
        return None
    if not isinstance(index, torch.Tensor) or index.dtype != torch.int64 or index.dim() != 1:
        return None
    if not isinstance(source, torch.Tensor) or source.dtype != x.dtype or source.dim() != x.dim() or x.dim() == 0:
        return None
    if not -x.dim() <= dim < x.dim() or not (x.is_meta and index.is_meta and source.is_meta):
        return None
    d = dim % x.dim()
    if source.shape[d] != index.shape[0] or any(a != b for i, (a, b) in enumerate(zip(x.shape, source.shape)) if i != d):
        return None
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


def _addmm_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # aten.addmm(bias, mat1, mat2): what `F.linear` runs; PyTorch's meta kernel is a Python
    # decomposition. Only the plain case: alpha = beta = 1, 2-d same-dtype matrices, a bias of
    # the output's last size or of its full shape.
    if len(args) != 3 or kwargs:
        return None
    bias, a, b = args
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or not isinstance(bias, torch.Tensor):
        return None
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or not (a.dtype == b.dtype == bias.dtype):
        return None
    if not b.is_meta or not bias.is_meta:
        return None
    n, m = a.shape[0], b.shape[1]
    if tuple(bias.shape) not in ((m,), (1, m), (n, m)):
        return None
    return torch.empty((n, m), dtype=a.dtype, device=a.device)


def _cat_meta(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    tensors = args[0] if args else None
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not isinstance(tensors, (list, tuple)) or not tensors or not isinstance(tensors[0], torch.Tensor):
        return None
    first = tensors[0]
    if first.dim() == 0:
        return None
    dim = dim % first.dim()
    shape = first.shape
    before, after = shape[:dim], shape[dim + 1 :]
    dtype = first.dtype
    total = 0
    for t in tensors:  # a DenseNet layer concatenates every earlier output: keep this loop lean
        if not isinstance(t, torch.Tensor) or not t.is_meta or t.dtype != dtype or not t.is_contiguous():
            return None
        size = t.shape
        if len(size) != len(shape) or size[:dim] != before or size[dim + 1 :] != after:
            return None
        total += size[dim]
    shape = list(first.shape)
    shape[dim] = total
    return torch.empty(shape, dtype=first.dtype, device=first.device)


def _fast_rules() -> dict[Any, Callable[[tuple[Any, ...], dict[str, Any]], Any]]:
    aten = torch.ops.aten
    # Only cases whose result is certain: same-shaped, same-dtype, same-strided operands.
    # Anything else falls through to PyTorch's own meta kernel.
    rules: dict[Any, Callable[[tuple[Any, ...], dict[str, Any]], Any]] = {
        aten.native_batch_norm.default: lambda a, k: _batch_norm_meta(a, k) if a[0].dim() >= 2 else None,
        aten.relu.default: lambda a, k: _like(a[0]),
        aten.relu_.default: lambda a, k: a[0],  # in place: the result is the argument itself
        aten.add.Tensor: lambda a, k: _like(a[0]) if _same_layout(a) else _elementwise_meta(a, k),
        aten.add_.Tensor: lambda a, k: a[0] if _same_layout(a) else None,
        aten.convolution.default: _conv_meta,
        aten.addmm.default: _addmm_meta,
        aten.mul.Tensor: _elementwise_meta,
        aten.div.Tensor: _elementwise_meta,
        aten.tanh.default: _unary_meta,
        aten.sigmoid.default: _unary_meta,
        aten.pow.Tensor_Scalar: _unary_meta,
        aten.mean.dim: _mean_meta,
        aten.max_pool2d_with_indices.default: _pool_meta(2, True),
        aten.avg_pool2d.default: _pool_meta(2, False),
        aten.avg_pool3d.default: _pool_meta(3, False),
        aten._adaptive_avg_pool2d.default: _adaptive_avg_pool2d_meta,
        aten.index_copy.default: _index_copy_meta,
        aten.empty_like.default: lambda a, k: None if k or len(a) != 1 else _dense_like(a[0]),
        aten.div_.Scalar: lambda a, k: a[0] if not k and len(a) == 2 and _number(a[1]) and a[0].dtype.is_floating_point
        else None,
    }

    def on_meta(rule: Callable[[tuple[Any, ...], dict[str, Any]], Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
        def guarded(a: tuple[Any, ...], k: dict[str, Any]) -> Any:
            return rule(a, k) if a and isinstance(a[0], torch.Tensor) and a[0].is_meta else None

        return guarded

    guarded = {op: on_meta(rule) for op, rule in rules.items()}
    guarded[aten.cat.default] = _cat_meta  # takes a list; checks every tensor itself
    return guarded


class _FastMeta(TorchDispatchMode):
    """Runs ops on meta tensors, replacing slow Python meta kernels by their shape rule.

    PyTorch implements the meta kernels of batch norm, ReLU, addition, convolution and
    concatenation in Python (torch._refs, torch._meta_registrations); in a ResNet or a
    DenseNet they take most of a meta forward pass. Each rule here answers only when the
    result is certain (contiguous, same-dtype operands) and otherwise returns None, and
    PyTorch's own kernel runs (and raises its own errors).
    """

    def __init__(self) -> None:
        super().__init__()
        self.fast = _fast_rules()

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # PyTorch (2.6 and later) wraps a mode's __torch_dispatch__ in `torch._disable_dynamo`,
        # whose first call imports torch._dynamo (1 to 4 s and about 200 MB on a cold start).
        # Nothing here is ever compiled, so the wrapper is not needed.
        return False

    def _run(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        fast = self.fast.get(func)
        if fast is not None:
            out = fast(args, kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        return self._run(func, args, kwargs or {})


class _Ref(weakref.ref):
    """A weak reference to a tracked tensor that knows its storage key."""

    __slots__ = ("key",)


class _Walk(_FastMeta):
    """Prices every op for the module on top of `stack` and tracks live activation bytes."""

    def __init__(self, stack: list[LayerRecord], skip: set[int]) -> None:
        super().__init__()
        self.stack = stack
        self.rules = rules()
        self.skip = skip  # storages of parameters, buffers and the input
        self.by_kind = dict.fromkeys(KINDS, 0)
        self.live: dict[int, list[int]] = {}  # storage -> [bytes, python tensors alive, serial number]
        self.serial = 0  # storages created so far
        self.refs: dict[int, _Ref] = {}  # a weak reference to every tracked tensor, until it dies
        self.current = 0
        self.peak = 0
        self.written = 0
        self.active = True

    def _dead(self, ref: "_Ref") -> None:
        self.refs.pop(id(ref), None)
        self._release(ref.key)

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None or not self.active:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = self._run(func, args, kwargs)
        rule = self.rules.get(func.overloadpacket)
        if rule is not None:
            macs, ops, kind = rule(args, kwargs, out)
            row = self.stack[-1]
            row.macs += macs
            if ops:
                row.other_ops += ops
                self.by_kind[kind] += ops
        for t in (out,) if isinstance(out, torch.Tensor) else _tensors(out):
            key = _storage_key(t)
            if key in self.skip:
                continue
            entry = self.live.get(key)
            if entry is None:
                nbytes = t.untyped_storage().nbytes()
                self.serial += 1
                self.live[key] = [nbytes, 1, self.serial]
                self.current += nbytes
                self.written += nbytes
            else:
                entry[1] += 1
            ref = _Ref(t, self._dead)  # lighter than weakref.finalize
            ref.key = key
            self.refs[id(ref)] = ref
        if self.current > self.peak:
            self.peak = self.current
        return out


@contextlib.contextmanager
def _mode(model: nn.Module, modules: list[nn.Module], training: bool) -> Iterator[None]:
    """Put every submodule in train or eval mode for the pass, then restore each one's.

    `modules` is every module of `model`. The flags are set directly unless a module
    overrides `train()` (a frozen batch norm, say): then `model.train()` runs, overrides
    included.
    """
    saved = [(m.__dict__, m.training) for m in modules]
    if any(type(m).train is not nn.Module.train for m in modules):
        model.train(training)
    else:
        for d, _ in saved:  # a plain attribute: skip nn.Module.__setattr__'s checks
            d["training"] = training
    try:
        yield
    finally:
        for d, flag in saved:
            d["training"] = flag


def _meta_like(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    target = dtype if t.is_floating_point() else t.dtype
    out = torch.empty(t.shape, dtype=target, device="meta")
    if isinstance(t, nn.Parameter):
        return nn.Parameter(out, requires_grad=t.requires_grad)
    return out


class _Runner:
    """Calls the module on a meta input with meta parameters, without touching the user's.

    A module that is not already all-meta gets meta stand-ins for its parameters and
    buffers for the duration of the call, put straight into each module's `_parameters`
    and `_buffers` and put back afterwards, whatever happens. Each module is visited once
    and each tensor gets one stand-in, so tied weights stay tied and a module reached by
    two paths is swapped once (`torch.func.functional_call`, given every name of a shared
    module, left meta tensors behind in the user's model).
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype, modules: list[nn.Module], state: list[torch.Tensor]) -> None:
        """`modules`: every module of `model`, each once; `state`: its parameters and buffers, each once."""
        self.model = model
        self.swaps: list[tuple[dict[str, Any], str, torch.Tensor, torch.Tensor]] = []
        if all(t.is_meta and (t.dtype == dtype or not t.is_floating_point()) for t in state):
            self.state = state
            return
        stand_in = {id(t): _meta_like(t, dtype) for t in state}
        self.state = list(stand_in.values())
        for m in modules:
            for table in (m._parameters, m._buffers):
                for name, t in table.items():
                    if t is not None:
                        self.swaps.append((table, name, t, stand_in[id(t)]))

    def storage_keys(self) -> set[int]:
        return {_storage_key(t) for t in self.state}

    def __call__(self, x: torch.Tensor) -> Any:
        if not self.swaps:
            return self.model(x)
        try:
            for table, name, _, meta in self.swaps:
                table[name] = meta
            return self.model(x)
        finally:
            for table, name, original, _ in self.swaps:
                table[name] = original


def _resolve(model_or_name: nn.Module | str, input_size: Sequence[int] | None) -> tuple[nn.Module, str, tuple[int, int, int]]:
    if isinstance(model_or_name, str):
        from ..registry import create_model, model_info

        info = model_info(model_or_name)
        with meta_build():  # shapes only: no weight is allocated (or initialised)
            model = create_model(model_or_name)
        size = info.default_input if input_size is None else input_size
        return model, model_or_name, _check_input_size(size)
    if not isinstance(model_or_name, nn.Module):
        raise ConfigError(f"analyze() takes an nn.Module or a registered model name, got {type(model_or_name).__name__}")
    model = model_or_name
    label = getattr(model, "zoo_name", None) or type(model).__name__
    if input_size is None:
        zoo_name = getattr(model, "zoo_name", None)
        if zoo_name is not None:
            from ..registry import model_info

            input_size = model_info(zoo_name).default_input
        else:
            input_size = (int(getattr(model, "in_channels", 3)), 224, 224)
    return model, label, _check_input_size(input_size)


def _layout(entries: list[tuple[str, nn.Module, int]]) -> "_Layout":
    """What the rows of `entries` (from `replay.module_tree`) start from: per module in
    pre-order its name, type, depth, leafness and own parameters; each module's subtree as
    a slice of the rows; the model's parameters and buffers (each once)."""
    tensors: list[torch.Tensor] = []
    static: list[tuple[str, str, int, bool, int, int]] = []
    modules: list[nn.Module] = []
    spans: dict[nn.Module, tuple[int, int]] = {}
    open_: list[tuple[int, int, nn.Module]] = []  # (depth, first row, module) of unfinished subtrees
    seen: set[int] = set()
    for i, (name, module, depth) in enumerate(entries):
        while open_ and open_[-1][0] >= depth:
            _, first, done = open_.pop()
            spans[done] = (first, i)
        open_.append((depth, i, module))
        is_leaf = all(c is None for c in module._modules.values())
        params = trainable = 0
        for p in module._parameters.values():
            if p is None or id(p) in seen:  # a shared parameter is counted where it first appears
                continue
            seen.add(id(p))
            tensors.append(p)
            params += p.numel()
            if p.requires_grad:
                trainable += p.numel()
        for b in module._buffers.values():
            if b is not None and id(b) not in seen:
                seen.add(id(b))
                tensors.append(b)
        static.append((name, type(module).__name__, depth, is_leaf, params, trainable))
        modules.append(module)
    for _, first, done in open_:
        spans[done] = (first, len(static))
    return static, modules, spans, tensors


_Layout = tuple[list[tuple[str, str, int, bool, int, int]], list[nn.Module], dict[nn.Module, tuple[int, int]], list[torch.Tensor]]


def _rows(
    layout: _Layout,
) -> tuple[list[LayerRecord], dict[nn.Module, LayerRecord], dict[nn.Module, tuple[int, int]], list[torch.Tensor]]:
    """Fresh rows of a `_layout`, the row of each module, the subtrees' spans and the tensors."""
    static, modules, spans, tensors = layout
    rows = [LayerRecord(name=n, type=t, depth=d, is_leaf=leaf, params=p, trainable_params=tp)
            for n, t, d, leaf, p, tp in static]  # fmt: skip
    return rows, dict(zip(modules, rows)), spans, tensors


class Prepared:
    """The part of an analysis that depends on a network's module tree alone, computed once
    and kept for the next analyses of the same network: the modules in pre-order, their
    parameter counts and subtree spans, and the repeated blocks to replay (fingerprints).
    For a deep network it is a large share of an update (ResNet-1202: 56 of about 270 ms).

    Valid while the tree is unchanged: no module, parameter, buffer or plain attribute
    added, removed or replaced and no training flag set. The explorer keeps one for each
    network it keeps (`analysis.compare.BuiltSources`), and never changes those networks.
    `analyze(model, prepared=prepared)` takes it."""

    __slots__ = ("model", "tree", "layout", "_repeated")

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.tree = R.module_tree(model)
        self.layout = _layout(self.tree[0])
        self._repeated: dict[nn.Module, int] | None = None

    def repeated(self) -> dict[nn.Module, int]:
        """The outermost repeated blocks (`replay.replayable_roots`), found on first use."""
        if self._repeated is None:
            self._repeated = R.replayable_roots(self.model, R.fingerprints(self.model, self.tree))
        return self._repeated


def _hooks(by_module: dict[nn.Module, LayerRecord], stack: list[LayerRecord], root: LayerRecord, itemsize: int) -> list[Any]:
    """Global forward hooks (one pair for all modules, cheaper than a pair per module) that
    keep `stack` and fill each row's calls and shapes; modules outside the model are ignored."""
    get = by_module.get

    def pre(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        row = get(module)
        if row is None or row is root:
            return  # the root's own work is charged to the bottom of the stack
        row.calls += 1
        if inputs:
            first = inputs[0]
            row.input_shape = list(first.shape) if isinstance(first, torch.Tensor) else _shape_of(first)
        else:
            row.input_shape = None
        stack.append(row)

    def post(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        row = get(module)
        if row is None or row is root:
            return
        stack.pop()
        if isinstance(output, torch.Tensor):
            row.output_shape = list(output.shape)
            elements = output.numel()
        else:
            row.output_shape = _shape_of(output)
            elements = sum(t.numel() for t in _tensors(output))
        row.output_elements = elements
        row.output_bytes = elements * itemsize

    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    return [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]


def _stack_hooks(by_module: dict[nn.Module, LayerRecord], stack: list[LayerRecord], root: LayerRecord) -> list[Any]:
    """Global forward hooks for the training pass: they only keep `stack` (the rows' calls
    and shapes come from the inference pass)."""
    get = by_module.get

    def pre(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        row = get(module)
        if row is not None and row is not root:
            stack.append(row)

    def post(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        row = get(module)
        if row is not None and row is not root:
            stack.pop()

    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    return [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]


def _failure(label: str, size: tuple[int, int, int], stack: list[LayerRecord], err: Exception) -> InputSizeError:
    c, h, w = size
    row = stack[-1]
    where = f"layer '{row.name}' ({row.type})" if row.name else f"the top-level forward of {row.type}"
    received = f" received shape {tuple(row.input_shape)}" if row.input_shape and row.name else ""
    detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return InputSizeError(f"input {c}x{h}x{w} does not fit {label}: {where}{received} and failed: {detail}")


class _Setup:
    """What both passes start from: fresh rows, the meta stand-ins, the meta input and the
    blocks to replay."""

    def __init__(self, model: nn.Module, size: tuple[int, int, int], batch_size: int, dtype: torch.dtype, replay: bool,
                 prepared: Prepared | None) -> None:  # fmt: skip
        if prepared is None:
            prepared = Prepared(model)
        elif prepared.model is not model:
            raise ConfigError("analyze(): `prepared` was made for another network (Prepared(model) of this one)")
        self.rows, self.by_module, self.spans, self.tensors = _rows(prepared.layout)
        self.modules = list(self.by_module)
        self.runner = _Runner(model, dtype, self.modules, self.tensors)
        self.param_keys = self.runner.storage_keys()
        self.x = torch.empty((batch_size, *size), dtype=dtype, device="meta")
        self.repeated = prepared.repeated() if replay else {}


def _training_pass(model: nn.Module, run: _Setup) -> tuple[dict[int, int], str]:
    """Pass 2: the storages autograd keeps for backward (storage -> bytes), each charged to
    the row that saved it first (`saved_bytes`); and, when the network cannot run in train
    mode on this input, why not (then the bytes are not an estimate)."""
    modules, runner, x, rows, by_module = run.modules, run.runner, run.x, run.rows, run.by_module
    spans, repeated, param_keys = run.spans, run.repeated, run.param_keys
    saved: dict[int, int] = {}
    skip = param_keys | {_storage_key(x)}
    root = rows[0]

    training = R.TrainingReplay(saved, skip, spans, rows)
    stack = [root]  # the module running now: a storage is charged to the row that saves it first

    held: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> int:
        key = _storage_key(t)
        row = stack[-1]
        training.packed(key, row)
        if key not in skip and key not in saved:
            nbytes = saved[key] = t.untyped_storage().nbytes()
            row.saved_bytes += nbytes
        # The graph keeps the key, not the tensor: a tensor packed as itself is a reference
        # cycle through autograd's C++ nodes (a ReLU saves its own output), which Python's
        # collector cannot see, and every analysis leaked its model, rows and graph (+0.55 MB
        # an analysis in `convzoo serve`). `held` keeps the storages alive for the pass
        # instead, so no freed address becomes a new storage's key.
        held.append(t)
        return key

    def unpack(key: int) -> torch.Tensor:  # pragma: no cover - no backward runs
        raise RuntimeError("the analysis graph is never run backward")

    training_error = ""
    handles = _stack_hooks(by_module, stack, root)
    try:
        with _mode(model, modules, True), torch.enable_grad(), \
                torch.autograd.graph.saved_tensors_hooks(pack, unpack), R.patched(repeated, training), _FastMeta():  # fmt: skip
            out = runner(x)
        del out
    except (ConvzooError, RuntimeError, ValueError, IndexError, TypeError, NotImplementedError) as err:
        # the network runs at inference (pass 1 succeeded) but cannot train on this input (batch norm on a
        # single value per channel, for instance): report inference, say why not training
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        training_error = f"no training estimate: in train mode the network fails on input {tuple(x.shape)}: {text}"
    finally:
        for h in handles:
            h.remove()
    training.keep.clear()
    held.clear()
    return saved, training_error


def _add_training(memory: MemoryReport, rows: list[LayerRecord], saved_bytes: int | None, note: str) -> None:
    """Fill the training estimate of `memory` from the bytes saved for backward (None, with
    `note` saying why, when there is no estimate; then no row has saved bytes either)."""
    if saved_bytes is None:
        by_optimizer: dict[str, int] | None = None
        for row in rows:
            row.saved_bytes = None
    else:
        base = memory.param_bytes + memory.buffer_bytes + memory.gradient_bytes + memory.input_bytes + saved_bytes
        by_optimizer = {k: base + v for k, v in memory.optimizer_state_bytes.items()}
    memory.saved_activation_bytes = saved_bytes
    memory.training_bytes = None if by_optimizer is None else by_optimizer["sgd_momentum"]
    memory.training_bytes_by_optimizer = by_optimizer
    memory.training_note = note


#: what `training_estimate` returns: the bytes each row saved for backward, in the report's
#: row order, and their total (both None: no estimate), and why there is none ("" when there is)
Estimate = tuple["list[int] | None", "int | None", str]


def training_estimate(
    model: nn.Module,
    input_size: Sequence[int],
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    *,
    replay: bool = True,
    prepared: Prepared | None = None,
) -> Estimate:
    """The training pass of `analyze` alone: the bytes each row saves for backward, for
    `with_training`. `analyze(model, ...)` equals `with_training(analyze(model, ...,
    training=False), training_estimate(model, ...))` for the same arguments; the explorer
    runs the two halves in two processes at once (`convzoo.serve.helper`)."""
    size = _check_input_size(input_size)
    _check_run(batch_size, dtype)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        run = _Setup(model, size, batch_size, dtype, replay, prepared)
        saved, note = _training_pass(model, run)
        if note:
            return None, None, note
        return [r.saved_bytes or 0 for r in run.rows], sum(saved.values()), note
    finally:
        if gc_was_enabled:
            gc.enable()


def with_training(report: Report, estimate: Estimate) -> Report:
    """`report` (from `analyze(..., training=False)`) completed with the `training_estimate`
    of the same network and arguments: its rows' saved bytes and its training memory."""
    per_row, total, note = estimate
    if per_row is not None and len(per_row) != len(report.layers):
        raise ConfigError(f"with_training(): {len(per_row)} rows in the estimate, {len(report.layers)} in the report")
    if per_row is not None:
        for row, nbytes in zip(report.layers, per_row):
            row.saved_bytes = nbytes
    _add_training(report.memory, report.layers, total, note)
    return report


def _dynamo_imported() -> bool:
    return "torch._dynamo" in sys.modules


def analyze(
    model_or_name: nn.Module | str,
    input_size: Sequence[int] | None = None,
    batch_size: int = 1,
    dtype: torch.dtype = torch.float32,
    *,
    replay: bool = True,
    training: bool = True,
    prepared: Prepared | None = None,
) -> Report:
    """Parameters, MACs, other ops and memory of a network, layer by layer.

    `model_or_name` is any `nn.Module` or a registered name (built on the meta device).
    `input_size` is (C, H, W), by default the registry's default input (or
    (in_channels, 224, 224)). Nothing real is allocated: see the module docstring.
    Raises `ConfigError` for a bad size and `InputSizeError` naming the layer where an
    input too small (or of the wrong shape) stops the network. `replay=False` runs every
    repeated block instead of replaying its first run (`analysis/replay.py`): same report, slower.
    `training=False` skips the training pass (about half the time): no bytes saved for
    backward and no training memory (None, with `memory.training_note` saying why), the rest
    unchanged. For callers that need only parameters, MACs and inference memory.
    `prepared` is a `Prepared(model)` kept from an earlier analysis of the same, unchanged
    module (see `Prepared`): the set-up is skipped, the report is the same.
    """
    _check_run(batch_size, dtype)
    had_dynamo = _dynamo_imported()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the passes create many short-lived objects; collections would scan the whole model
    try:
        report = _analyze(model_or_name, input_size, batch_size, dtype, replay, training, prepared)
        if not had_dynamo and _dynamo_imported():
            # An op without a shape rule here ran one of PyTorch's Python meta kernels, whose
            # first call imports torch._dynamo (`torch._compile._disable_dynamo`). Imported
            # inside a forward, it leaves frames in reference cycles that hold the running
            # layer's tensors (a phantom activation, with collection paused): analyse again,
            # now that it is imported. The zoo's networks never get here (tests).
            report = _analyze(model_or_name, input_size, batch_size, dtype, replay, training, prepared)
        return report
    finally:
        if gc_was_enabled:
            gc.enable()


def _analyze(
    model_or_name: nn.Module | str,
    input_size: Sequence[int] | None,
    batch_size: int,
    dtype: torch.dtype,
    replay: bool,
    train: bool = True,
    prepared: Prepared | None = None,
) -> Report:
    t0 = time.perf_counter()
    model, label, size = _resolve(model_or_name, input_size)
    itemsize = torch.empty((), dtype=dtype, device="meta").element_size()
    run = _Setup(model, size, batch_size, dtype, replay, prepared)
    rows, by_module, spans, tensors, modules = run.rows, run.by_module, run.spans, run.tensors, run.modules
    root, runner, param_keys, x, repeated = rows[0], run.runner, run.param_keys, run.x, run.repeated
    shape = tuple(x.shape)
    input_bytes = x.numel() * itemsize
    t1 = time.perf_counter()

    # -- pass 1: inference, priced op by op --------------------------------------------
    stack: list[LayerRecord] = [root]
    walk = _Walk(stack, param_keys | {_storage_key(x)})
    handles = _hooks(by_module, stack, root, itemsize)
    root.calls = 1
    root.input_shape = list(shape)
    try:
        with _mode(model, modules, False), torch.no_grad(), R.patched(repeated, R.InferenceReplay(spans, rows, walk)), walk:
            out = runner(x)
    except ConvzooError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError) as err:
        raise _failure(label, size, stack, err) from err
    finally:
        for h in handles:
            h.remove()
    root.output_shape = _shape_of(out)
    root.output_elements = sum(t.numel() for t in _tensors(out))
    root.output_bytes = root.output_elements * itemsize
    del out
    walk.active = False
    t2 = time.perf_counter()

    # -- pass 2: training, what autograd keeps for backward ----------------------------
    if train:
        saved, training_error = _training_pass(model, run)
    else:
        saved, training_error = {}, "no training estimate: not asked for (analyze(..., training=False))"
    t3 = time.perf_counter()

    # -- totals ---------------------------------------------------------------------------
    by_name = {row.name: row for row in rows}
    for row in reversed(rows):  # children come after their parent in pre-order
        row.cum_params += row.params
        row.cum_macs += row.macs
        row.cum_other_ops += row.other_ops
        if row.name:
            parent_row = by_name.get(row.name.rpartition(".")[0], rows[0])
            parent_row.cum_params += row.cum_params
            parent_row.cum_macs += row.cum_macs
            parent_row.cum_other_ops += row.cum_other_ops
    total_params = sum(r.params for r in rows)
    trainable = sum(r.trainable_params for r in rows)
    param_bytes = total_params * itemsize  # each parameter once, as in `_rows`
    buffers = [t for t in tensors if not isinstance(t, nn.Parameter)]
    buffer_bytes = sum(b.numel() * (itemsize if b.is_floating_point() else b.element_size()) for b in buffers)
    grad_bytes = trainable * itemsize
    optimizer_state = {k: v * grad_bytes for k, v in OPTIMIZER_STATE.items()}
    memory = MemoryReport(
        param_bytes=param_bytes,
        buffer_bytes=buffer_bytes,
        input_bytes=input_bytes,
        forward_activation_bytes=walk.written,
        peak_inference_bytes=param_bytes + buffer_bytes + input_bytes + walk.peak,
        saved_activation_bytes=None,
        gradient_bytes=grad_bytes,
        optimizer_state_bytes=optimizer_state,
        training_bytes=None,
        training_bytes_by_optimizer=None,
    )
    _add_training(memory, rows, None if training_error else sum(saved.values()), training_error)
    return Report(
        model=label,
        input_size=size,
        batch_size=batch_size,
        dtype=str(dtype).replace("torch.", ""),
        total_params=total_params,
        trainable_params=trainable,
        macs=sum(r.macs for r in rows),
        other_ops=sum(r.other_ops for r in rows),
        other_ops_by_kind=dict(walk.by_kind),
        output_shape=root.output_shape,
        layers=rows,
        memory=memory,
        timings={"setup": t1 - t0, "inference_pass": t2 - t1, "training_pass": t3 - t2, "total": time.perf_counter() - t0},
    )

