"""torch.fx feature extraction and TorchScript across the zoo's families.

One model per family (two where a variant differs in structure). fx tracing runs on meta
models (shapes only); TorchScript compiles CPU models and compares outputs on a small input.
torch.compile stays out of the tests (minutes of compilation on CPU); docs report a manual run.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import convzoo
from convzoo.registry import model_info

UNITS = ("original", "bn_after_add", "relu_before_add", "relu_only_preact", "full_preact")

feature_extraction = pytest.importorskip("torchvision.models.feature_extraction")

# one or two per family; a name missing from the registry fails (deleting a family must fail tests)
FX_MODELS = [
    "lenet5",
    "lenet5_paper",
    "alexnet",
    "alexnet_paper",
    "vgg_a_lrn",
    "vgg16_bn",
    "googlenet",
    "googlenet_paper",
    "resnet18",
    "resnet50_paper",
    "resnet20",
    "plain20",
    "preact_resnet164",
    "densenet121",
    "densenet_bc_100_12",
]


def registered(name: str) -> None:
    assert name in convzoo.list_models(), f"{name} is not registered"


@pytest.mark.parametrize("name", FX_MODELS)
def test_fx_feature_extractor_gives_the_feature_info_stages(name):
    registered(name)
    info = model_info(name)
    with torch.device("meta"):
        model = convzoo.create_model(name)
    model.eval()
    nodes = {f["module"]: f"stage{i}" for i, f in enumerate(model.feature_info)}
    extractor = feature_extraction.create_feature_extractor(model, return_nodes=nodes)
    c, h, w = info.default_input
    out = extractor(torch.empty(2, c, h, w, device="meta"))
    assert list(out) == list(nodes.values())
    for f, feat in zip(model.feature_info, out.values()):
        assert feat.shape[:2] == (2, f["channels"]), f["module"]
        # the map is the input over the reduction, less what valid (unpadded) convs and
        # pools trim at the borders (LeNet: 32 -> 14 at reduction 2), never half of it
        r = f["reduction"]
        assert w / (2 * r) < feat.shape[-1] <= -(-w // r), f["module"]


def test_fx_trace_of_memory_efficient_densenet_matches():
    # checkpointing is skipped while fx traces; the traced graph computes the same thing
    torch.manual_seed(0)
    model = convzoo.create_model("densenet_bc_100_12", memory_efficient=True).eval()
    graph = torch.fx.symbolic_trace(model)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(graph(x), model(x))


# TorchScript: the five residual-unit variants and the DenseNet (memory-efficient mode is
# inactive when scripted: torch.utils.checkpoint is not scriptable)
SCRIPT_CASES = [("resnet20", {"unit": u}) for u in UNITS] + [("densenet_bc_100_12", {"memory_efficient": True})]


def _script(model: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.10 marks torch.jit.script as deprecated
        return torch.jit.script(model)


@pytest.mark.parametrize("name, kwargs", SCRIPT_CASES, ids=[f"{n}-{next(iter(k.values()))}" for n, k in SCRIPT_CASES])
def test_torchscript(name, kwargs):
    torch.manual_seed(0)
    model = convzoo.create_model(name, **kwargs).eval()
    scripted = _script(model)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-6)
