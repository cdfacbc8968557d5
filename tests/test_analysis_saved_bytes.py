"""Per-layer bytes saved for backward: each storage charged once, to the module that saved
it first; the rows sum to the total, and replayed blocks charge their own rows exactly as a
full run does."""

from __future__ import annotations

import pytest
from torch import nn

from convzoo.analysis import analyze


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "googlenet_paper", "densenet_bc_100_12", "vgg_a_lrn"])
def test_rows_sum_to_the_total_and_replay_charges_the_same_rows(name):
    r = analyze(name)
    assert sum(row.saved_bytes for row in r.layers) == r.memory.saved_activation_bytes
    full = analyze(name, replay=False)
    assert [(x.name, x.saved_bytes) for x in r.layers] == [(x.name, x.saved_bytes) for x in full.layers]
    assert all("saved_bytes" in row for row in r.to_dict()["layers"])


def test_a_storage_saved_twice_is_charged_to_the_first_saver():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    r = analyze(net, input_size=(1, 8, 8), batch_size=2)
    relu, conv2 = r.layer("1"), r.layer("2")
    # the ReLU saves its output, which is conv2's input: charged once, to the ReLU
    assert relu.saved_bytes == 2 * 4 * 6 * 6 * 4
    assert conv2.saved_bytes == 0
    assert r.layer("0").saved_bytes == 0  # conv1's input is the network input (counted apart)


def test_no_training_estimate_means_no_per_layer_figure():
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2), nn.Flatten(), nn.BatchNorm1d(2))
    r = analyze(net, input_size=(1, 1, 1), batch_size=1)
    assert r.memory.saved_activation_bytes is None
    assert all(row.saved_bytes is None for row in r.layers)


def test_an_analysis_leaves_nothing_alive():
    """The training pass used to pack each saved tensor as itself: a cycle through autograd's
    C++ nodes kept every analysed model, its rows and its graph alive (`convzoo serve` grew
    0.55 MB an analysis)."""
    import gc
    import weakref

    import convzoo

    model = convzoo.create_model("lenet5")
    ref = weakref.ref(model)
    report = convzoo.analyze(model, input_size=(1, 32, 32), batch_size=2)
    assert report.to_dict()
    del model, report
    gc.collect()
    assert ref() is None, "the analysed model is still referenced after its report is gone"
