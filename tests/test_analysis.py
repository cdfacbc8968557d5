"""The analysis engine: exact counts, conventions, memory model and that nothing real is allocated."""

from __future__ import annotations

import resource
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from convzoo.analysis import analyze, parse_input_size
from convzoo.analysis.counting import conv_macs
from convzoo.errors import ConfigError, InputSizeError


def flop_counter_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """FlopCounterMode's count (2 FLOPs per multiply-add) on meta tensors, halved."""
    with torch.device("meta"):
        meta = model.to("meta") if any(not p.is_meta for p in model.parameters()) else model
    meta.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(torch.empty(shape, device="meta"))
    flops = counter.get_total_flops()
    assert flops % 2 == 0
    return flops // 2


# -- LeNet-5: the lecture's numbers, by hand ---------------------------------------------------
def test_lenet5_totals_and_rows():
    r = analyze("lenet5")
    assert r.input_size == (1, 32, 32)
    assert r.total_params == r.trainable_params == 61_706
    assert r.macs == 416_520
    assert r.flops == 2 * 416_520
    convs = [row for row in r.layers if row.type == "Conv2d"]
    fcs = [row for row in r.layers if row.type == "Linear"]
    assert [c.macs for c in convs] == [28 * 28 * 6 * 25, 10 * 10 * 16 * 150]
    assert [f.macs for f in fcs] == [400 * 120, 120 * 84, 84 * 10]
    assert [c.params for c in convs] == [156, 2_416]
    assert [f.params for f in fcs] == [48_120, 10_164, 850]
    assert convs[0].output_shape == [1, 6, 28, 28] and fcs[-1].output_shape == [1, 10]
    assert r.memory.param_bytes == 61_706 * 4
    assert r.output_shape == [1, 10]


def test_rows_sum_to_totals_and_cumulative_root():
    for name in ("lenet5", "resnet18", "densenet121"):
        r = analyze(name)
        assert sum(x.params for x in r.layers) == r.total_params
        assert sum(x.macs for x in r.layers) == r.macs
        assert sum(x.other_ops for x in r.layers) == r.other_ops == sum(r.other_ops_by_kind.values())
        root = r.layers[0]
        assert root.name == "" and root.cum_params == r.total_params and root.cum_macs == r.macs


@pytest.mark.parametrize(
    "name, shape",
    [("resnet18", (1, 3, 64, 64)), ("densenet121", (1, 3, 64, 64)), ("alexnet_paper", (1, 3, 227, 227)), ("vgg_c", (1, 3, 32, 32))],
)
def test_macs_equal_flop_counter_mode(name, shape):
    with torch.device("meta"):
        model = convzoo.create_model(name)
    assert analyze(model, shape[1:]).macs == flop_counter_macs(model, shape)


def test_published_torchvision_macs():
    # torchvision's metadata "GFLOPS" are multiply-adds of conv + linear layers
    assert analyze("resnet50").macs == 4_089_184_256
    assert analyze("vgg16").macs == 15_470_264_320


# -- the convolution formula: grouped, 1x1, strided, dilated, transposed -----------------------
@settings(max_examples=40, deadline=None)
@given(
    cin_g=st.integers(1, 4), cout_g=st.integers(1, 4), groups=st.integers(1, 3), k=st.integers(1, 5),
    stride=st.integers(1, 3), pad=st.integers(0, 2), dil=st.integers(1, 2), side=st.integers(8, 20),
    bias=st.booleans(), batch=st.integers(1, 3),
)
def test_conv_closed_form(cin_g, cout_g, groups, k, stride, pad, dil, side, bias, batch):
    cin, cout = cin_g * groups, cout_g * groups
    with torch.device("meta"):
        conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dil, groups=groups, bias=bias)
    out = (side + 2 * pad - dil * (k - 1) - 1) // stride + 1
    if out < 1:
        return
    r = analyze(conv, (cin, side, side), batch_size=batch)
    # every output element of every output channel sums k*k*(C_in/groups) products; bias is not a MAC
    assert r.macs == batch * out * out * cout * k * k * (cin // groups)
    assert r.total_params == cout * (cin // groups) * k * k + (cout if bias else 0)
    assert r.macs == flop_counter_macs(conv, (batch, cin, side, side))


def test_one_by_one_depthwise_and_transposed():
    with torch.device("meta"):
        pw = nn.Conv2d(64, 128, 1)
        dw = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        tr = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        lin = nn.Linear(300, 7)
    assert analyze(pw, (64, 14, 14)).macs == 14 * 14 * 128 * 64
    assert analyze(dw, (32, 10, 10)).macs == 10 * 10 * 32 * 9
    # a transposed convolution works per input position: 5x5 inputs x 16 x 8 x 4 x 4
    assert analyze(tr, (16, 5, 5)).macs == 5 * 5 * 16 * 8 * 16 == flop_counter_macs(tr, (1, 16, 5, 5))
    assert conv_macs((2, 16, 5, 5), (16, 8, 4, 4), (2, 8, 10, 10), True) == 2 * 25 * 16 * 8 * 16
    assert analyze(nn.Sequential(nn.Flatten(), lin), (3, 10, 10)).macs == 300 * 7


class Residual(nn.Module):
    """Functional ops in forward: an addition, a concatenation, adaptive pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = self.bn(self.conv(x))
        z = torch.relu(y + x)
        z = torch.cat([z, x], dim=1)
        return self.pool(z)


def test_functional_ops_go_to_their_own_column_and_module():
    r = analyze(Residual(), (8, 6, 6), batch_size=2)
    n = 2 * 8 * 6 * 6
    assert r.macs == n * 8 * 9  # only the convolution
    root, conv, bn, pool = (r.layer(k) for k in ("", "conv", "bn", "pool"))
    assert root.other_ops == n + n  # the residual addition and the ReLU, charged to the module that does them
    assert bn.other_ops == 2 * n and conv.other_ops == 0
    assert pool.other_ops == 2 * n  # adaptive average pooling adds every input element once (cat doubled C)
    assert pool.output_shape == [2, 16, 1, 1] and pool.macs == 0
    assert r.other_ops_by_kind == {"norm": 2 * n, "activation": n, "pool": 2 * n, "elementwise": n}


# -- memory --------------------------------------------------------------------------------------
def test_memory_model_by_hand():
    model = nn.Sequential(nn.Linear(100, 50), nn.ReLU(), nn.Linear(50, 10))
    r = analyze(model, (1, 1, 100), batch_size=4)
    m = r.memory
    params = 100 * 50 + 50 + 50 * 10 + 10
    assert m.param_bytes == params * 4 and m.gradient_bytes == params * 4 and m.buffer_bytes == 0
    assert m.input_bytes == 4 * 100 * 4
    # written: 4x50 (linear) + 4x50 (relu) + 4x10 (linear), float32
    assert m.forward_activation_bytes == (200 + 200 + 40) * 4
    # at the ReLU both the linear output and the ReLU output are alive
    assert m.peak_inference_bytes == params * 4 + 1600 + 1600
    # saved for backward: the ReLU output (also the second linear's input) once; input and weights apart
    assert m.saved_activation_bytes == 800
    assert m.optimizer_state_bytes == {"sgd": 0, "sgd_momentum": params * 4, "adam": 2 * params * 4}
    assert m.training_bytes == 3 * params * 4 + 1600 + 800 == r.training_memory()
    assert r.training_memory(8, "adam") == 4 * params * 4 + 2 * (1600 + 800)
    with pytest.raises(ConfigError):
        r.training_memory(4, "lbfgs")


def test_memory_scales_with_batch_and_dtype():
    r1, r4 = analyze("resnet20", batch_size=1), analyze("resnet20", batch_size=4)
    assert r4.memory.saved_activation_bytes == pytest.approx(4 * r1.memory.saved_activation_bytes, rel=0.01)
    assert r4.memory.param_bytes == r1.memory.param_bytes
    half = analyze("resnet20", dtype=torch.float16)
    assert half.memory.param_bytes * 2 == r1.memory.param_bytes and half.macs == r1.macs


def test_user_module_is_untouched_and_nothing_is_allocated():
    model = convzoo.create_model("lenet5")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = analyze(model)
    assert r.total_params == 61_706 and r.model == "lenet5"
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(m.training for m in model.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    # VGG-E has 575 MB of float32 weights: none of it may be allocated
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    analyze("vgg_e", batch_size=8)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 150 * 1024  # KiB


def test_speed_of_the_deep_networks():
    analyze("lenet5")  # import the families first
    for name in ("vgg_e", "resnet152", "densenet201"):
        t0 = time.perf_counter()
        analyze(name)
        # the goal is well under a second each; the bound leaves room for a loaded CI machine
        assert time.perf_counter() - t0 < 2.5, name


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["3x0x224", "abc", "3x", "3x-1x5", "3x224x224x1"])
def test_bad_input_text(text):
    with pytest.raises(ConfigError, match="CxHxW"):
        parse_input_size(text)


def test_bad_arguments():
    with pytest.raises(ConfigError):
        analyze("lenet5", (1, 0, 32))
    with pytest.raises(ConfigError):
        analyze("lenet5", batch_size=0)
    with pytest.raises(convzoo.ConvzooError):
        analyze("lenet6")
    assert parse_input_size("3x224x200") == (3, 224, 200)


def test_too_small_input_names_the_layer():
    with pytest.raises(InputSizeError, match="pre_logits|32x32"):
        analyze("lenet5", (1, 16, 16))
    plain = nn.Sequential(nn.Conv2d(3, 4, 5), nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
    with pytest.raises(InputSizeError, match=r"layer '2' \(Linear\)"):
        analyze(plain, (3, 12, 12))
    assert analyze(plain, (3, 8, 8)).macs == 4 * 4 * 4 * 75 + 64 * 10


def test_failure_on_a_real_module_leaves_it_intact():
    model = convzoo.create_model("lenet5")
    weight = model.fc.weight.detach().clone()
    with pytest.raises(InputSizeError):
        analyze(model, (1, 8, 8))
    assert model.fc.weight.device.type == "cpu" and torch.equal(model.fc.weight, weight)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert model(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_no_training_estimate_when_train_mode_cannot_run():
    r = analyze("resnet18", (3, 1, 1))  # batch norm cannot train on one value per channel
    assert r.macs > 0 and r.memory.training_bytes is None and "train mode" in r.memory.training_note
    with pytest.raises(ConfigError, match="train mode"):
        r.training_memory()


# -- the engine's shortcuts for slow meta kernels give exactly PyTorch's results ----------------
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 3), cin=st.integers(1, 6), cout=st.integers(1, 6), k=st.integers(1, 4), stride=st.integers(1, 3),
    pad=st.integers(0, 2), dil=st.integers(1, 2), side=st.integers(1, 12), parts=st.lists(st.integers(1, 4), min_size=1, max_size=4),
)
def test_fast_meta_rules_match_pytorch(n, cin, cout, k, stride, pad, dil, side, parts):
    from convzoo.analysis.engine import _fast_rules

    fast = _fast_rules()
    aten = torch.ops.aten
    meta = lambda *shape: torch.empty(shape, device="meta")  # noqa: E731

    def same(ours, theirs):
        ours = ours if isinstance(ours, tuple) else (ours,)
        theirs = theirs if isinstance(theirs, tuple) else (theirs,)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape and a.dtype == b.dtype and a.stride() == b.stride()

    x, w = meta(n, cin, side, side), meta(cout, cin, k, k)
    args = (x, w, None, [stride, stride], [pad, pad], [dil, dil], False, [0, 0], 1)
    try:
        theirs = aten.convolution.default(*args)
    except RuntimeError:  # too small: the shortcut must step aside so PyTorch raises
        assert fast[aten.convolution.default](args, {}) is None
    else:
        same(fast[aten.convolution.default](args, {}), theirs)
    pieces = [meta(n, c, side, side) for c in parts]
    same(fast[aten.cat.default]((pieces, 1), {}), aten.cat.default(pieces, 1))
    bn = (x, meta(cin), meta(cin), meta(cin), meta(cin), False, 0.1, 1e-5)
    same(fast[aten.native_batch_norm.default](bn, {}), aten.native_batch_norm.default(*bn))
    same(fast[aten.relu.default]((x,), {}), aten.relu.default(x))
    same(fast[aten.add.Tensor]((x, meta(n, cin, side, side)), {}), aten.add.Tensor(x, meta(n, cin, side, side)))


@pytest.mark.parametrize("name", ["googlenet", "densenet121", "resnet20"])
def test_a_rows_dict_is_what_asdict_gives_and_shares_nothing(name):
    import dataclasses

    report = analyze(name)
    for row in report.layers:
        d = row.to_dict()
        assert d == dataclasses.asdict(row) and list(d) == [f.name for f in dataclasses.fields(row)]
        for key in ("input_shape", "output_shape"):
            if d[key] is not None:
                assert d[key] is not getattr(row, key)


@pytest.mark.parametrize("name", ["googlenet", "densenet121", "resnet20"])
def test_a_report_dict_without_copies_is_the_same_dict(name):
    report = analyze(name)
    shared, copied = report.to_dict(copy=False), report.to_dict()
    assert shared == copied and list(shared) == list(copied)
    for row, d in zip(report.layers, shared["layers"]):
        assert list(d) == list(copied["layers"][0]) and d["output_shape"] is row.output_shape


@pytest.mark.parametrize("name", ["densenet121", "resnet56", "googlenet", "lenet5"])
def test_a_prepared_network_analyses_as_a_fresh_one(name):
    """`Prepared` keeps the set-up (module tree, layout, repeated blocks) for the next
    analyses of the same module: every later report, at any batch, dtype or input, is the
    one a fresh analysis gives."""
    import torch

    from convzoo.analysis.engine import Prepared
    from convzoo.meta import meta_build
    from convzoo.registry import create_model, model_info

    with meta_build():
        model = create_model(name)
    prepared = Prepared(model)
    c, h, w = model_info(name).default_input
    grown = (c, h, w) if name == "lenet5" else (c, h + 8, w + 8)  # LeNet-5 takes 32x32 only
    for size, batch, dtype in (((c, h, w), 1, torch.float32), ((c, h, w), 3, torch.bfloat16), (grown, 2, torch.float32)):
        again = analyze(model, size, batch, dtype, prepared=prepared).to_dict()
        assert again == analyze(model, size, batch, dtype).to_dict()
        assert again == analyze(model, size, batch, dtype, prepared=prepared, replay=False).to_dict()
    with meta_build():
        other = create_model(name)
    with pytest.raises(ConfigError, match="another network"):
        analyze(other, prepared=prepared)


@pytest.mark.parametrize(
    "name, size, batch, dtype",
    [("densenet121", None, 2, torch.float32), ("resnet56", None, 1, torch.bfloat16), ("googlenet", None, 3, torch.float32),
     ("lenet5", None, 1, torch.float32), ("alexnet", None, 2, torch.float32), ("resnet18", (3, 1, 1), 1, torch.float32)],
)  # fmt: skip
def test_the_two_halves_of_an_analysis_make_the_whole(name, size, batch, dtype):
    """The explorer runs the training pass in a helper process while it runs the inference
    pass (`convzoo.serve.helper`): `with_training` of the two halves is `analyze` itself,
    and a network that cannot train on its input (resnet18 at 1x1) says so the same way."""
    from convzoo.analysis.engine import Prepared, training_estimate, with_training
    from convzoo.meta import meta_build
    from convzoo.registry import create_model, model_info

    with meta_build():
        model, other = create_model(name), create_model(name)
    size = size or model_info(name).default_input
    whole = analyze(model, size, batch, dtype).to_dict()
    half = analyze(other, size, batch, dtype, training=False)
    estimate = training_estimate(model, size, batch, dtype, prepared=Prepared(model))  # a build of its own, as the helper's
    assert with_training(half, estimate).to_dict() == whole
    if name == "resnet18":
        assert estimate[0] is None and "train mode" in estimate[2]
    else:
        assert estimate[1] == whole["memory"]["saved_activation_bytes"]
        with pytest.raises(ConfigError, match="rows in the estimate"):
            with_training(analyze("lenet5_paper" if name != "lenet5_paper" else "lenet5", training=False), estimate)


@pytest.mark.parametrize("name", ["resnet20", "googlenet", "densenet121", "lenet5"])
def test_training_false_skips_only_the_training_estimate(name):
    full, fast = analyze(name).to_dict(), analyze(name, training=False).to_dict()
    fm, sm = full.pop("memory"), fast.pop("memory")
    for row in full["layers"] + fast["layers"]:
        row.pop("saved_bytes")
    assert fast == full
    assert sm["saved_activation_bytes"] is None and sm["training_bytes"] is None and sm["training_bytes_by_optimizer"] is None
    assert "not asked for" in sm["training_note"]
    assert {k: v for k, v in sm.items() if "training" not in k and "saved" not in k} == \
        {k: v for k, v in fm.items() if "training" not in k and "saved" not in k}  # fmt: skip
    assert all(r.saved_bytes is None for r in analyze(name, training=False).layers)


@pytest.mark.parametrize("name", ["resnet20", "densenet121", "googlenet", "lenet5"])
def test_an_analysis_leaves_no_reference_cycles(name):
    """A network analysed and dropped is freed at once by reference counting: nothing of it
    waits in a cycle for the collector. (The fingerprints' recursive inner function once kept
    every module alive that way, and in the explorer the full collection that finally freed
    a dropped 1000-layer network took 500 ms of an update.)"""
    import gc

    from convzoo.analysis.engine import Prepared
    from convzoo.meta import meta_build
    from convzoo.registry import create_model

    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        with meta_build():
            model = create_model(name)
        prepared = Prepared(model)
        analyze(model, prepared=prepared)
        analyze(model, batch_size=2, dtype=torch.bfloat16, prepared=prepared)
        del model, prepared
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()
