"""Zoo models written in the notation: the registered network is exactly its line."""

from __future__ import annotations

import pytest
import torch

import convzoo
from convzoo.models.notation_zoo import VGG_A_LRN_NARROW, VGG_A_NARROW, NotationNet

NOTATION_MODELS = {"vgg_a_narrow": VGG_A_NARROW, "vgg_a_lrn_narrow": VGG_A_LRN_NARROW}


def _lrn_experiment_specs() -> dict[str, str]:
    from convzoo.experiments import load_recipe

    return {run["name"]: run["spec"] for run in load_recipe("lrn").runs}


@pytest.mark.parametrize("name", sorted(NOTATION_MODELS))
def test_registered_model_counts_what_its_line_counts(name: str) -> None:
    text = NOTATION_MODELS[name]
    model = convzoo.analyze(name).to_dict()
    line = convzoo.analyze(convzoo.from_spec(text, in_channels=1, input_size=32), input_size=(1, 32, 32)).to_dict()
    assert model["total_params"] == line["total_params"] == 678_218
    assert model["macs"] == line["macs"] == 9_685_504
    with torch.device("meta"):
        net = convzoo.create_model(name)
    assert net.spec_text == text


def test_pair_is_the_lrn_experiments_pair() -> None:
    specs = _lrn_experiment_specs()
    assert specs["vgg_a_narrow"] == VGG_A_NARROW
    assert specs["vgg_a_lrn_narrow"] == VGG_A_LRN_NARROW
    # the only difference is the LRN after conv1
    assert VGG_A_LRN_NARROW.replace("(LRN)5n2k1e-4a0.75b ", "") == VGG_A_NARROW


def test_classifier_contract() -> None:
    torch.manual_seed(0)
    model = convzoo.create_model("vgg_a_lrn_narrow", num_classes=7).eval()
    x = torch.randn(2, 1, 32, 32)
    assert model(x).shape == (2, 7)
    assert torch.equal(model(x), model.forward_head(model.forward_features(x)))
    assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, model.head_hidden_size)
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    model.reset_classifier(0)
    assert model(x).shape == (2, 256)


def test_bad_lines_are_config_errors() -> None:
    with pytest.raises(convzoo.ConvzooError, match="end in an fc"):
        NotationNet("6c5w1s0p 2w2s (Flat)")
    with pytest.raises(convzoo.ConvzooError, match=r"\(Flat\)"):
        NotationNet("6c5w1s0p 2w2s 10fc")
