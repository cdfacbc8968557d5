"""hubconf.py at the repository root: torch.hub.load(repo_dir, name, source="local")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import convzoo

REPO = str(Path(__file__).resolve().parents[1])


def _hubconf():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf", Path(REPO) / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hub_has_an_entry_point_per_model():
    hub = _hubconf()
    # what torch.hub.list reports: the public callables of hubconf.py
    entries = sorted(n for n in dir(hub) if callable(getattr(hub, n)) and not n.startswith("_"))
    assert entries == sorted(convzoo.list_models())
    assert "ResNet" in hub.resnet20.__doc__ and "weights=" in hub.resnet20.__doc__


def test_hub_load_passes_keyword_arguments_through():
    torch.manual_seed(0)
    model = torch.hub.load(REPO, "resnet20", source="local", trust_repo=True, num_classes=7)
    assert model.zoo_name == "resnet20" and model.num_classes == 7
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 7)


def test_hub_load_with_shipped_weights():
    if not hasattr(convzoo, "list_weights") or not convzoo.list_weights("lenet5"):
        pytest.fail("lenet5 ships fashion-mnist weights (src/convzoo/weights); they are missing")
    hub = torch.hub.load(REPO, "lenet5", source="local", trust_repo=True, weights="fashion-mnist")
    direct = convzoo.create_model("lenet5", weights="fashion-mnist")
    for (k, a), b in zip(hub.state_dict().items(), direct.state_dict().values()):
        assert torch.equal(a, b), k
    assert hub.weights_meta["tag"] == "fashion-mnist"


def test_hub_load_resnet20_with_fashion_mnist_weights():
    # the call: torch.hub.load("<owner>/convzoo", "resnet20", weights="fashion-mnist")
    hub = torch.hub.load(REPO, "resnet20", source="local", trust_repo=True, weights="fashion-mnist")
    direct = convzoo.create_model("resnet20", weights="fashion-mnist")
    assert hub.weights_meta["tag"] == "fashion-mnist" and hub.in_channels == 1 and hub.num_classes == 10
    assert hub.state_dict().keys() == direct.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(hub.state_dict().values(), direct.state_dict().values()))
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(hub.eval()(x), direct.eval()(x))
