"""convzoo.analysis.compare: the structural diff and cost deltas of two networks."""

from __future__ import annotations

import pytest

import convzoo
from convzoo.analysis.compare import compare, parse_source
from convzoo.errors import ConfigError, NotationError

LENET = "6c5w1s0p 2w2s 16c5w1s0p 2w2s (Flat) 120fc 84fc 10fc"


def test_alexnet_paper_against_torchvision():
    d = compare("alexnet_paper", "alexnet")
    a, b = convzoo.analyze("alexnet_paper"), convzoo.analyze("alexnet")
    assert d["a"]["params"] == a.total_params and d["b"]["params"] == b.total_params
    assert d["delta"]["params"] == b.total_params - a.total_params == 135_616
    assert d["delta"]["macs"] == b.macs - a.macs
    changed = {r["a"]["name"]: r["changes"] for r in d["layers"] if r["op"] == "changed"}
    assert changed["stages.0.conv1.conv"]["width"] == [96, 64]
    assert changed["stages.1.conv2.conv"]["groups"] == [2, 1]
    removed = [r["a"]["name"] for r in d["layers"] if r["op"] == "removed"]
    assert removed == ["stages.0.lrn", "stages.1.lrn"]
    # stage deltas add up to the total
    assert sum(s["delta"]["params"] for s in d["stages"]) == d["delta"]["params"]


def test_successive_vgg_adds_layers_and_resnet_stride_moves():
    d = compare("vgg_a", "vgg_b")
    added = [r["b"]["name"] for r in d["layers"] if r["op"] == "added" and r["b"]["type"] == "Conv2d"]
    assert added == ["stages.0.conv2.conv", "stages.1.conv2.conv"]
    assert d["counts"]["removed"] == 0 and d["counts"]["changed"] == 0
    d = compare("resnet50_paper", "resnet50")
    assert d["delta"]["params"] == 0 and d["counts"]["changed"] == 6
    assert all(set(r["changes"]) == {"stride"} for r in d["layers"] if r["op"] == "changed")


def test_unit_variant_and_notation_sides():
    d = compare("resnet20", "resnet20(unit=full_preact)")
    assert d["counts"]["added"] > 0 and d["counts"]["removed"] > 0
    assert d["delta"]["params"] == 0
    d = compare(LENET, "lenet5")
    assert d["a"]["kind"] == "notation" and d["delta"]["params"] == 0 and d["delta"]["macs"] == 0
    assert d["counts"] == {"same": 11, "changed": 0, "added": 0, "removed": 0}
    d = compare(LENET, LENET.replace("6c5w1s0p", "6c3w1s1p"))
    ch = [r["changes"] for r in d["layers"] if r["op"] == "changed"]
    assert ch[0] == {"kernel": [[5, 5], [3, 3]], "padding": [[0, 0], [1, 1]]}


def test_sources_and_errors():
    assert parse_source("resnet20(unit=full_preact, shortcut=A)") == ("resnet20", {"unit": "full_preact", "shortcut": "A"})
    assert parse_source(LENET) is None
    with pytest.raises(ConfigError):
        parse_source("resnet20(num_classes=10)")
    with pytest.raises(ConfigError):
        compare("resnet20(unit=nope)", "resnet20")
    with pytest.raises(NotationError):
        compare("6c5w1s0p 2w2q", "lenet5")
