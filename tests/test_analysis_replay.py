"""Replay of repeated blocks and fast meta builds give exactly the reports of a full run."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

from convzoo import create_model
from convzoo.analysis import analyze
from convzoo.analysis import replay as R
from convzoo.layers.residual import ResidualUnit
from convzoo.meta import clone_meta, meta_build


def _report(model, **kwargs):
    d = analyze(model, **kwargs).to_dict()
    d.pop("timings", None)
    return d


@pytest.mark.parametrize(
    "name",
    ["resnet56", "plain20", "preact_resnet164", "resnet50", "resnet50_paper", "googlenet", "densenet_bc_100_12",
     "vgg16_bn", "lenet5"],
)  # fmt: skip
def test_replayed_report_equals_the_full_run(name):
    assert _report(name) == _report(name, replay=False)


@pytest.mark.parametrize("unit", ["original", "bn_after_add", "relu_before_add", "relu_only_preact", "full_preact"])
@pytest.mark.parametrize("shortcut", ["A", "B", "C", "none"])
def test_every_unit_variant_and_shortcut_replays_exactly(unit, shortcut):
    model = create_model("resnet20", unit=unit, shortcut=shortcut)
    for batch in (1, 3):
        assert _report(model, batch_size=batch) == _report(model, batch_size=batch, replay=False)
    # a real (non-meta) module in bf16 goes through functional_call with meta stand-ins
    assert _report(model, dtype=torch.bfloat16) == _report(model, dtype=torch.bfloat16, replay=False)


def test_replay_skips_the_repeated_forwards(monkeypatch):
    calls = []
    forward = ResidualUnit.forward

    def counting(self, x):
        calls.append(self)
        return forward(self, x)

    monkeypatch.setattr(ResidualUnit, "forward", counting)
    analyze("resnet110", replay=False)
    full = len(calls)
    calls.clear()
    analyze("resnet110")
    assert full == 2 * 54  # both passes run all 54 units
    # per pass: one unit of the first stage (its first unit equals the others), and in the
    # two other stages the first unit (it changes the shape) and one of the 17 others
    assert len(calls) == 2 * (1 + 2 + 2)


class _Cached(nn.Module):
    """Keeps its input alive in an attribute: its effect on memory cannot be replayed."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.last = None

    def forward(self, x):
        y = self.conv(x)
        self.last = y
        return torch.relu(y)


class _Scaled(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.scale = torch.full((1,), value, device="meta")  # a plain tensor attribute: not fingerprinted

    def forward(self, x):
        return self.conv(x) * self.scale


class _Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(8, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.a(x), self.b(x)


class _First(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pair = _Pair()

    def forward(self, x):
        return self.pair(x)[0]


class _InPlace(nn.Module):
    """Adds in place to its input and returns it: the output is not a new storage."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        return x.add_(self.conv(x))


@pytest.mark.parametrize("block", [_Cached, lambda: _Scaled(2.0), _First, _InPlace, lambda: nn.Sequential(nn.Identity())])
def test_blocks_that_cannot_be_replayed_still_give_the_full_report(block):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), *[block() for _ in range(4)], nn.Flatten())
    assert _report(model, input_size=(3, 12, 12)) == _report(model, input_size=(3, 12, 12), replay=False)


def test_fingerprints_tell_blocks_apart():
    a, b = ResidualUnit(16, 16), ResidualUnit(16, 16)
    c = ResidualUnit(16, 16, stride=2)
    d = ResidualUnit(16, 16, unit="full_preact")
    model = nn.Sequential(a, b, c, d, _Scaled(1.0))
    prints = R.fingerprints(model)
    assert prints[a] == prints[b]
    assert len({prints[a], prints[c], prints[d]}) == 3
    assert model[4] not in prints and model not in prints  # a tensor attribute, and a parent of it
    b.register_forward_hook(lambda *args: None)
    prints = R.fingerprints(model)
    assert b not in prints and a in prints
    roots = R.replayable_roots(model, R.fingerprints(nn.Sequential(ResidualUnit(8, 8), ResidualUnit(8, 8))))
    assert roots == {}  # fingerprints of another model name none of this one's modules


def test_a_shared_child_is_not_fingerprinted():
    shared = nn.Conv2d(4, 4, 3, padding=1)
    model = nn.Sequential(nn.Sequential(shared, nn.ReLU()), nn.Sequential(shared, nn.ReLU()))
    prints = R.fingerprints(model)
    assert shared not in prints and model[0] not in prints
    assert _report(model, input_size=(4, 8, 8)) == _report(model, input_size=(4, 8, 8), replay=False)


def test_analyze_leaves_a_module_with_shared_and_tied_parts_untouched():
    shared = nn.Conv2d(4, 4, 3, padding=1)
    tied_a, tied_b = nn.Linear(4, 4), nn.Linear(4, 4)
    tied_b.weight = tied_a.weight
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.AdaptiveAvgPool2d(1), nn.Flatten(), tied_a, tied_b)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = analyze(model, input_size=(4, 8, 8))
    assert report.total_params == 148 + 20 + 4  # the conv once, the tied weight once
    assert report.memory.buffer_bytes == 0
    assert type(shared.weight) is nn.Parameter and not shared.weight.is_meta
    assert tied_b.weight is tied_a.weight
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_meta_build_skips_initialisation_and_allocates_nothing(monkeypatch):
    def fail(*args, **kwargs):  # pragma: no cover - the point is that it is not called
        raise AssertionError("uniform_ ran on the meta device")

    with meta_build():
        conv = nn.Conv2d(3, 8, 3)
        monkeypatch.setattr(torch.Tensor, "uniform_", fail)
        nn.init.kaiming_uniform_(conv.weight)
        bn = nn.BatchNorm2d(8)
        lin = nn.Linear(4, 2)
    assert all(t.is_meta for m in (conv, bn, lin) for t in [*m.parameters(), *m.buffers()])
    assert bn.num_batches_tracked.dtype == torch.long


def test_meta_build_leaves_real_tensors_alone():
    real = torch.zeros(3)
    with meta_build():
        nn.init.ones_(real)
    assert real.tolist() == [1.0, 1.0, 1.0] and not real.is_meta


@pytest.mark.parametrize("name", ["resnet110", "preact_resnet164", "resnet152", "plain56"])
def test_meta_builds_equal_plain_meta_builds(name):
    with meta_build():
        fast = create_model(name)
    with torch.device("meta"):
        plain = create_model(name)
    assert repr(fast) == repr(plain)
    assert {k: (v.shape, v.dtype) for k, v in fast.state_dict().items()} == {
        k: (v.shape, v.dtype) for k, v in plain.state_dict().items()
    }
    params = list(fast.parameters())
    assert len({id(p) for p in params}) == len(params)  # cloned units share nothing
    assert all(p.is_meta and p.requires_grad for p in params)


def test_clone_meta_copies_structure_not_state():
    with torch.device("meta"):
        unit = ResidualUnit(16, 32, stride=2, shortcut="B")
    copy = clone_meta(unit)
    assert repr(copy) == repr(unit) and copy is not unit
    assert all(a is not b for a, b in zip(copy.parameters(), unit.parameters()))
    assert copy.branch.conv1.padding == unit.branch.conv1.padding
    copy.register_forward_hook(lambda *args: None)
    assert not unit._forward_hooks


def test_clone_meta_refuses_real_or_hooked_modules():
    with pytest.raises(ValueError, match="meta"):
        clone_meta(nn.Conv2d(3, 3, 1))
    with torch.device("meta"):
        hooked = nn.Conv2d(3, 3, 1)
    hooked.register_forward_pre_hook(lambda *args: None)
    with pytest.raises(ValueError, match="hooks"):
        clone_meta(hooked)


def test_first_analysis_in_a_process_equals_later_ones():
    code = (
        "from convzoo.analysis import analyze\n"
        "a = analyze('resnet20').memory; b = analyze('resnet20').memory\n"
        "print(a.peak_inference_bytes == b.peak_inference_bytes, a.saved_activation_bytes == b.saved_activation_bytes)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "True"]
