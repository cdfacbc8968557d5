"""The engine's shape rules for ops whose PyTorch meta kernels are Python (they would import
torch._dynamo and sympy on a cold start) give exactly PyTorch's results, or step aside."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from convzoo.analysis.engine import _fast_rules

aten = torch.ops.aten
FAST = _fast_rules()
LAYOUTS = ("contiguous", "channels_last", "strided")


def meta(shape, layout="contiguous"):
    t = torch.empty(shape, device="meta")
    if layout == "channels_last" and len(shape) == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided" and len(shape) >= 2:
        return torch.empty((*shape[:-1], shape[-1] * 2), device="meta")[..., ::2]
    return t


def check(op, args, kwargs=None):
    """Ours equals PyTorch's (shape, dtype, strides), or ours is None; where PyTorch raises,
    ours must be None so that PyTorch raises its own error."""
    kwargs = kwargs or {}
    ours = FAST[op](args, kwargs)
    try:
        theirs = op(*args, **kwargs)
    except (RuntimeError, ValueError, IndexError, TypeError):
        assert ours is None, f"{op} answered where PyTorch raises"
        return None
    if ours is None:
        return False
    ours = ours if isinstance(ours, tuple) else (ours,)
    theirs = theirs if isinstance(theirs, tuple) else (theirs,)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert (a.shape, a.dtype, a.stride(), a.device) == (b.shape, b.dtype, b.stride(), b.device), (op, args)
    return True


shape4 = st.lists(st.integers(1, 5), min_size=4, max_size=4)


@settings(max_examples=25, deadline=None, phases=(Phase.generate, Phase.shrink))
@given(shape=shape4, layout=st.sampled_from(LAYOUTS), mask=st.lists(st.booleans(), min_size=4, max_size=4),
       drop=st.integers(0, 3), scalar=st.sampled_from([2, 0.5, True, None]), swap=st.booleans())
def test_elementwise_rules(shape, layout, mask, drop, scalar, swap):
    x = meta(shape, layout)
    other_shape = [1 if m else s for s, m in zip(shape, mask)][drop:]
    y = meta(other_shape, layout if len(other_shape) == 4 else "contiguous")
    for op in (aten.add.Tensor, aten.mul.Tensor, aten.div.Tensor):
        check(op, (y, x) if swap else (x, y))
        if scalar is not None:
            check(op, (x, torch.tensor(scalar)))
    for op in (aten.tanh.default, aten.sigmoid.default):
        check(op, (x,))
    check(aten.pow.Tensor_Scalar, (x, 2))
    check(aten.pow.Tensor_Scalar, (x, 0.5))
    check(aten.empty_like.default, (x,))
    check(aten.div_.Scalar, (x.clone(), 3.0))
    assert check(aten.mul.Tensor, (meta(shape), meta(shape))) is True  # the plain case is answered


@settings(max_examples=25, deadline=None, phases=(Phase.generate, Phase.shrink))
@given(shape=shape4, layout=st.sampled_from(LAYOUTS), dims=st.lists(st.integers(-4, 3), min_size=1, max_size=3),
       keepdim=st.booleans())
def test_mean_rule(shape, layout, dims, keepdim):
    check(aten.mean.dim, (meta(shape, layout), dims, keepdim))


@settings(max_examples=60, deadline=None, phases=(Phase.generate, Phase.shrink))
@given(shape=st.lists(st.integers(1, 9), min_size=3, max_size=4), layout=st.sampled_from(LAYOUTS),
       k=st.lists(st.integers(1, 4), min_size=1, max_size=2), stride=st.lists(st.integers(1, 3), min_size=0, max_size=2),
       pad=st.lists(st.integers(0, 2), min_size=1, max_size=2), dil=st.lists(st.integers(1, 2), min_size=1, max_size=2),
       ceil=st.booleans(), include=st.booleans())
def test_pooling_rules(shape, layout, k, stride, pad, dil, ceil, include):
    x = meta(shape, layout)
    check(aten.max_pool2d_with_indices.default, (x, k, stride, pad, dil, ceil))
    check(aten.avg_pool2d.default, (x, k, stride, pad, ceil, include))
    check(aten._adaptive_avg_pool2d.default, (x, [max(1, s // 2) for s in shape[-2:]]))
    x5 = meta([1, *shape] if len(shape) == 4 else [2, 1, *shape])
    check(aten.avg_pool3d.default, (x5, [*k, 1][:3] if len(k) == 2 else k, [], [0], ceil, include))
    plain = meta([2, 3, 8, 8])
    assert check(aten.max_pool2d_with_indices.default, (plain, [2, 2], [2, 2])) is True
    assert check(aten.avg_pool2d.default, (plain, [3, 3], [1, 1], [1, 1])) is True


def test_linear_and_index_copy_rules():
    a, w, b = meta([5, 7]), meta([7, 3]), meta([3])
    assert check(aten.addmm.default, (b, a, w)) is True
    check(aten.addmm.default, (b, a, meta([6, 3])))  # mismatched: PyTorch raises, ours steps aside
    x, idx, src = meta([6, 4]), torch.empty(3, dtype=torch.int64, device="meta"), meta([3, 4])
    assert check(aten.index_copy.default, (x, 0, idx, src)) is True
    check(aten.index_copy.default, (x, 0, idx, meta([2, 4])))


def test_first_analysis_imports_neither_dynamo_nor_sympy():
    """A cold process analyses every kind of layer in the zoo (pooling of every kind, LRN,
    dropout, tanh, partial connections, linear layers) without importing torch._dynamo or
    sympy, and gets the same report as a second analysis."""
    code = (
        "import sys, torch\n"
        "from convzoo import analyze\n"
        "names = ['lenet5_paper', 'alexnet_paper', 'vgg_a_lrn', 'googlenet_paper', 'googlenet', 'densenet_bc_100_12', 'resnet20']\n"
        "first = [analyze(n).to_dict() for n in names]\n"
        "assert 'torch._dynamo' not in sys.modules and 'sympy' not in sys.modules, 'imported'\n"
        "assert first == [analyze(n).to_dict() for n in names]\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
