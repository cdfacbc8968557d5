"""The lecture's tables: published numbers in one place with sources, computed ones exact, notes where they differ."""

from __future__ import annotations

import pytest

from convzoo.analysis.papers import PUBLISHED, TABLES, paper_table
from convzoo.errors import ConfigError

KEYS = {"row", "quantity", "published", "computed", "rel_diff", "note"}


@pytest.fixture(scope="module")
def tables():
    return {name: paper_table(name) for name in TABLES}


def _row(table, row, quantity):
    found = [r for r in table.rows if r.row == row and r.quantity == quantity]
    assert len(found) == 1, (row, quantity)
    return found[0]


def test_every_published_number_has_a_source_and_is_used(tables):
    for name, entries in PUBLISHED.items():
        assert name in TABLES
        used = {(r.row, r.quantity) for r in tables[name].rows if r.published is not None}
        for p in entries:
            assert p.source and p.printed and p.value > 0
            assert (p.row, p.quantity) in used, f"{name}: published {p.row!r} {p.quantity!r} has no computed row"


def test_rows_have_the_json_fields_and_notes_where_they_differ(tables):
    for name, table in tables.items():
        d = table.to_dict()
        assert d["table"] == name and d["rows"]
        for row in d["rows"]:
            assert KEYS <= set(row)
            if row["published"] is not None:
                assert row["rel_diff"] == pytest.approx((row["computed"] - row["published"]) / row["published"])
                if abs(row["rel_diff"]) > 0.02:
                    assert len(row["note"]) > 20, (name, row["row"], row["quantity"])


def test_lenet_answers_the_lecture(tables):
    t = tables["lenet"]
    assert _row(t, "total", "params").computed == 61_706
    assert _row(t, "total", "MACs at 1x32x32").computed == 416_520
    assert _row(t, "parameters", "bytes (float32)").computed == 246_824
    c3 = _row(t, "C3: conv 16@5x5", "params")
    assert c3.computed == 2_416 and c3.published == 1_516 and "partial" in c3.note
    assert _row(t, "activations per image, training", "bytes saved for backward").computed > 0


def test_alexnet_paper_and_torchvision(tables):
    t = tables["alexnet"]
    assert _row(t, "alexnet_paper (two-GPU network)", "params").computed == 60_965_224
    assert _row(t, "alexnet (torchvision, one weird trick)", "params").computed == 61_100_840
    assert _row(t, "torchvision - paper", "params").computed == 135_616
    assert _row(t, "conv2", "params: paper network").computed == 256 * 5 * 5 * 48 + 256
    assert _row(t, "fc6", "params: torchvision").computed == _row(t, "fc6", "params: paper network").computed


def test_vgg_parameter_row(tables):
    t = tables["vgg"]
    computed = [_row(t, r, "params").computed for r in ("A (vgg_a)", "B (vgg_b)", "C (vgg_c)", "D (vgg_d)", "E (vgg_e)")]
    assert computed == [132_863_336, 133_047_848, 133_638_952, 138_357_544, 143_667_240]
    assert all(abs(r.rel_diff) < 0.02 for r in t.rows if r.quantity == "params")


def test_googlenet_conventions(tables):
    t = tables["googlenet"]
    # the rows that fix the conventions agree exactly: K = 1024, weights only, ops = MACs
    assert _row(t, "convolution 3x3/1 (with 1x1 reduce)", "params (weights, K=1024)").rel_diff == 0
    assert _row(t, "linear", "params (weights, K=1024)").computed == 1_024_000 == 1000 * 1024
    assert _row(t, "inception (3a)", "params (weights, K=1024)").computed == 163_328
    assert _row(t, "inception (3a)", "ops (MACs, M=10^6)").computed == 128_049_152
    ops = [r for r in t.rows if r.quantity.startswith("ops")]
    assert len(ops) == 12
    off = {r.row for r in t.rows if r.rel_diff is not None and abs(r.rel_diff) > 0.02}
    assert off == {"convolution 7x7/2", "inception (4c)", "inception (5a)", "linear"}


def test_resnet_flops_row(tables):
    t = tables["resnet"]
    for row in ("18-layer (resnet18)", "34-layer (resnet34)", "50-layer (resnet50_paper)",
                "101-layer (resnet101_paper)", "152-layer (resnet152_paper)"):
        assert abs(_row(t, row, "MACs at 224x224").rel_diff) < 0.02
    tv = _row(t, "50-layer, torchvision placement (resnet50)", "MACs at 224x224")
    assert tv.computed == 4_089_184_256 and "3x3" in tv.note
    paper = _row(t, "50-layer (resnet50_paper)", "MACs at 224x224").computed
    # the three strided 1x1 convolutions at stride 1 on the larger map: 3 x (4 - 1) x 56*56*256*128 / 4
    assert tv.computed - paper == 3 * 3 * 28 * 28 * 256 * 128


def test_densenet_structure(tables):
    t = tables["densenet"]
    for r in t.rows:
        if r.quantity in ("output side (pixels)", "layers", "weight layers"):
            assert r.computed == r.published, (r.row, r.quantity)
    assert _row(t, "densenet121", "params").computed == 7_978_856


def test_unknown_table():
    with pytest.raises(ConfigError, match="lenet"):
        paper_table("inception")


def test_published_totals_are_the_registrys():
    """A model's published total is stated once, in its family file, and read from the registry."""
    from convzoo.models.densenet import SPECS as DENSENET_SPECS
    from convzoo.models.lenet import LECTURE_MACS, PAPER_LAYER_PARAMS
    from convzoo.registry import model_info

    by_key = {(t, p.row, p.quantity): p for t, entries in PUBLISHED.items() for p in entries}
    reads = {
        ("lenet", "total", "params"): model_info("lenet5").params,
        ("lenet", "total", "MACs at 1x32x32"): model_info("lenet5").macs,
        ("lenet", "C3: conv 16@5x5", "params"): PAPER_LAYER_PARAMS["C3"],
        ("alexnet", "alexnet (torchvision, one weird trick)", "params"): model_info("alexnet").params,
        ("alexnet", "alexnet (torchvision, one weird trick)", "MACs at 224x224"): model_info("alexnet").macs,
        ("resnet", "18-layer (resnet18)", "MACs at 224x224"): model_info("plain18").macs,
        ("resnet", "152-layer (resnet152_paper)", "MACs at 224x224"): model_info("resnet152_paper").macs,
        **{("densenet", n, "params"): model_info(n).params for n in ("densenet121", "densenet169", "densenet201",
                                                                     "densenet161")},  # fmt: skip
    }
    for key, value in reads.items():
        assert value is not None and by_key[key].value == value, key
    assert sum(LECTURE_MACS) == model_info("lenet5").macs
    assert "61,706 parameters" in by_key[("lenet", "total", "params")].source
    # DenseNet's blocks come from its SPECS
    for name in ("densenet121", "densenet169", "densenet201", "densenet161"):
        blocks = [by_key[("densenet", f"{name}: dense block ({i + 1})", "layers")].value for i in range(4)]
        assert tuple(blocks) == DENSENET_SPECS[name].blocks
